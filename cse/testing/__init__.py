"""Conformance suites for cse's plugin contracts, shipped so third-party plugins can run them.

Each suite is a pytest test class with no ``Test`` prefix (so pytest does not collect it by itself). Subclass
it in your own test module, under a name pytest collects, and provide the fixture it asks for; every test
of the suite then runs against your plugin. The built-in plugins pass the same suites in cse's own tests.

- :mod:`cse.testing.stores`: :class:`~cse.testing.stores.StoreConformance` checks a
  :class:`~cse.stores.base.Store`: put/get/head/delete, ranged reads, empty objects, metadata round trips,
  listing order and prefixes, copy with and without metadata replace, the whole multipart life cycle,
  URL round trips, concurrency, and the error classes of :mod:`cse.exceptions`. Provide a ``store``
  fixture::

      import pytest
      from cse.testing.stores import StoreConformance

      class TestMyStore(StoreConformance):
          @pytest.fixture
          def store(self):
              return MyStore(...)

- :mod:`cse.testing.providers`: :class:`~cse.testing.providers.KeyProviderConformance` checks a
  :class:`~cse.providers.KeyProvider` (data keys, wrap/unwrap round trips for every wrap and content
  algorithm, opaque failures on damaged keys and changed contexts, no key material in ``repr``, threads).
  Provide a ``provider`` fixture.

- :mod:`cse.testing.formats`: :class:`~cse.testing.formats.FormatConformance` checks a
  :class:`~cse.formats.base.Format` (header-safe ``encode``, ``decode(encode(e)) == e``, ``detect``, and
  :class:`~cse.exceptions.MetadataError` naming the field for malformed metadata). Provide an ``fmt`` and
  an ``envelope`` fixture.

These modules import pytest, which cse itself does not depend on: import them only from test code.
"""

__all__: list[str] = []
