"""AWS KMS key identifiers: key ids, key ARNs, alias names and alias ARNs.

KMS names a key in four ways, and the provider accepts each of them::

    1234abcd-12ab-34cd-56ef-1234567890ab                              key id
    mrk-1234abcd12ab34cd56ef1234567890ab                              multi-Region key id
    arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab   key ARN
    alias/my-key                                                      alias name
    arn:aws:kms:us-east-1:111122223333:alias/my-key                   alias ARN

:func:`parse_key_reference` validates one of them, and :class:`KeyReference` tells what it says about the
key's account and region (only an ARN says anything). :meth:`KeyReference.may_be` compares two references
conservatively: it answers ``False`` only when they certainly name different keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "KEY_REFERENCE_HELP",
    "KeyReference",
    "check_account",
    "check_region",
    "parse_key_reference",
    "try_parse_key_reference",
]

#: How to spell a key, for error messages.
KEY_REFERENCE_HELP = (
    "a key id (1234abcd-12ab-34cd-56ef-1234567890ab or mrk-...), a key ARN "
    "(arn:aws:kms:REGION:ACCOUNT:key/KEY-ID), an alias name (alias/NAME) or an alias ARN "
    "(arn:aws:kms:REGION:ACCOUNT:alias/NAME)"
)

_KEY_ID = re.compile(
    r"^(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.IGNORECASE
)
_ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"(?P<resource>(?:key|alias)/.+)$"
)
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+-[0-9]+$")


@dataclass(frozen=True)
class KeyReference:
    """A validated way of naming a KMS key, and what it says about the key."""

    #: The reference as given (a key id, key ARN, alias name or alias ARN).
    text: str
    #: The key id (``1234abcd-...`` or ``mrk-...``), or the alias name (``alias/NAME``).
    resource: str
    #: The ARN's partition (``aws``, ``aws-cn``, ``aws-us-gov``), region and account; ``None`` unless an ARN.
    partition: str | None = None
    region: str | None = None
    account: str | None = None

    @property
    def is_arn(self) -> bool:
        """Whether the reference is an ARN (and so names its account and region)."""
        return self.account is not None

    @property
    def is_alias(self) -> bool:
        """Whether the reference names an alias rather than a key."""
        return self.resource.startswith("alias/")

    @property
    def is_multi_region(self) -> bool:
        """Whether it names a multi-Region key (``mrk-``), whose replicas share a key id across regions."""
        return self.resource.startswith("mrk-")

    def may_be(self, other: KeyReference) -> bool:
        """``False`` only when ``self`` and ``other`` certainly name different keys.

        Two ARNs in different accounts differ; two key ids differ; two key ARNs in different regions differ
        unless the key is multi-Region. An alias could name any key of its account, so an alias and a key
        (or two aliases) of the same or an unknown account may be the same key.
        """
        if self.account is not None and other.account is not None and self.account != other.account:
            return False
        if self.is_alias or other.is_alias:
            return True
        if self.resource.lower() != other.resource.lower():
            return False
        regions_known = self.region is not None and other.region is not None
        return not (regions_known and self.region != other.region and not self.is_multi_region)


def parse_key_reference(text: str) -> KeyReference:
    """Validate a key id, key ARN, alias name or alias ARN; raise ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a KMS key is named by a string, not {type(text).__name__}")
    if not text:
        raise ValueError(f"no KMS key is named; give {KEY_REFERENCE_HELP}")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"the KMS key {text!r} contains white space; give {KEY_REFERENCE_HELP}")
    if text.startswith("arn:"):
        match = _ARN.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a KMS key or alias ARN; give {KEY_REFERENCE_HELP}")
        resource = match["resource"]
        if resource.startswith("key/"):
            resource = resource[len("key/") :]
            if not _KEY_ID.match(resource):
                raise ValueError(f"the key ARN {text!r} does not end in a key id; give {KEY_REFERENCE_HELP}")
        elif not _ALIAS.match(resource):
            raise ValueError(f"the alias ARN {text!r} names no valid alias; give {KEY_REFERENCE_HELP}")
        return KeyReference(
            text=text,
            resource=resource,
            partition=match["partition"],
            region=match["region"],
            account=match["account"],
        )
    if text.startswith("alias/"):
        if not _ALIAS.match(text):
            raise ValueError(
                f"{text!r} is not a valid alias name: after alias/ come 1 to 250 letters, digits, '/', '_' "
                f"or '-'"
            )
        return KeyReference(text=text, resource=text)
    if _KEY_ID.match(text):
        return KeyReference(text=text, resource=text)
    hint = f" (an alias is written alias/{text})" if re.match(r"^[A-Za-z0-9/_-]+$", text) else ""
    raise ValueError(f"{text!r} is not a KMS key{hint}; give {KEY_REFERENCE_HELP}")


def try_parse_key_reference(text: str | None) -> KeyReference | None:
    """:func:`parse_key_reference`, or ``None`` for ``None`` and for text that names no KMS key."""
    if text is None:
        return None
    try:
        return parse_key_reference(text)
    except ValueError:
        return None


def check_account(account: str) -> str:
    """Validate a 12-digit AWS account id; raise ValueError otherwise."""
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise ValueError(f"{account!r} is not an AWS account id (12 digits, such as 111122223333)")
    return account


def check_region(region: str) -> str:
    """Validate the shape of an AWS region name (``us-east-1``); raise ValueError otherwise."""
    if not isinstance(region, str) or not _REGION.match(region):
        raise ValueError(f"{region!r} is not an AWS region name (such as us-east-1 or eu-central-1)")
    return region
