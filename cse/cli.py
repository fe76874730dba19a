"""The ``cse`` command.

Imports of the library (and through it, of any cloud SDK) happen inside the commands, so ``cse --help``
stays fast and imports no boto3 or oss2.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote

import click

from cse.cli_config import set_envvars

if TYPE_CHECKING:
    from cse.client import EncryptionClient, HeadResult

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

_PROGRESS_MIN = 8 * 1024 * 1024


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"cse: error: {message}", err=True)
    sys.exit(code)


def _handle_errors(fn: F) -> F:
    """Turn cse errors into a one-line reason on stderr and a non-zero exit."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from cse.exceptions import CseError

        try:
            return fn(*args, **kwargs)
        except CseError as exc:
            _fail(" ".join(str(exc).split()) or type(exc).__name__)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def _parse_context(pairs: Sequence[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not k=v", param_hint="--context")
        context[key] = value
    return context


def _client(keys: Sequence[str], to_keys: Sequence[str] = (), **options: Any) -> EncryptionClient:
    from cse.client import EncryptionClient

    if not keys:
        _fail("this command needs --key KEY_URI (for example --key rsa:///path/private.pem)", 2)
    return EncryptionClient(list(keys), wrap_keys=list(to_keys) or None, **options)


@contextmanager
def _progress(total: int | None, label: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for long transfers when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty() or (total is not None and total < _PROGRESS_MIN):
        yield None
        return
    bar: Any = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True, show_percent=True)
    with bar:
        yield bar.update


def _emit(as_json: bool, data: Any, human: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else human)


def _envelope_dict(head: HeadResult) -> dict[str, Any]:
    env = head.envelope
    return {
        "url": head.url,
        "size": head.size,
        "stored_size": head.stored_size,
        "etag": head.etag,
        "format": env.format,
        "content_algorithm": env.content_algorithm,
        "authentication": head.authentication,
        **_integrity(head),
        "segment_size": env.segment_size,
        "encryption_context": env.encryption_context,
        "keys": [
            {
                "wrap_algorithm": w.wrap_algorithm,
                "provider": w.provider,
                "key_id": w.key_id,
                "material_description": w.material_description,
            }
            for w in env.wrapped_keys
        ],
        **_server_side_dict(head),
    }


def _server_side_dict(head: HeadResult) -> dict[str, Any]:
    """The server-side layer beside the envelope: SSE (the object's or the bucket default) and the
    object's other settings."""
    sse = head.server_side_encryption
    settings = head.settings
    return {
        "server_side_encryption": (
            None if sse is None else {"mode": sse.mode, "key_id": sse.key_id, "source": head.sse_source}
        ),
        "content_type": settings.content_type,
        "content_disposition": settings.content_disposition,
        "cache_control": settings.cache_control,
        "storage_class": settings.storage_class,
    }


def _integrity(head: HeadResult) -> dict[str, Any]:
    """For OSS V2 (AES-CTR, no integrity of its own): whether the object carries cse's plaintext MAC."""
    if head.envelope.format != "oss-v2":
        return {}
    if head.envelope.plaintext_mac is not None:
        return {"plaintext_mac": "present: whole reads are verified (cse wrote it); ranges are not"}
    return {"plaintext_mac": "absent: nothing is verified (another writer, or a multipart upload)"}


def _human_head(d: dict[str, Any]) -> str:
    lines = [
        f"url:                {d['url']}",
        f"size:               {d['size']} bytes (stored {d['stored_size']})",
        f"format:             {d['format']} ({d['content_algorithm']})",
        f"authentication:     {d['authentication']}",
    ]
    if "plaintext_mac" in d:
        lines.append(f"plaintext MAC:      {d['plaintext_mac']}")
    if d["segment_size"]:
        lines.append(f"segment size:       {d['segment_size']}")
    if d["encryption_context"]:
        lines.append(f"encryption context: {json.dumps(d['encryption_context'], ensure_ascii=False)}")
    for i, k in enumerate(d["keys"]):
        extra = (
            f", material description {json.dumps(k['material_description'])}"
            if k["material_description"]
            else ""
        )
        lines.append(
            f"key {i}:              {k['wrap_algorithm']} via {k['provider']} id {k['key_id']}{extra}"
        )
    sse = d["server_side_encryption"]
    if sse is None:
        lines.append("server-side:        none")
    else:
        key_id = f", key {sse['key_id']}" if sse["key_id"] else ""
        lines.append(f"server-side:        {sse['mode']}{key_id} ({sse['source']})")
    for name, label in (
        ("content_type", "content type"),
        ("content_disposition", "disposition"),
        ("cache_control", "cache control"),
        ("storage_class", "storage class"),
    ):
        if d[name] is not None:
            lines.append(f"{label + ':':<20}{d[name]}")
    return "\n".join(lines)


key_option = click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="KEY_URI",
    help="Key URI (rsa:///path/key.pem ...). Repeat: put wraps for every key given, so any of them "
    "decrypts; reads use whichever key can.",
)
legacy_option = click.option(
    "--allow-legacy", is_flag=True, help="Read legacy formats (S3 V1, OSS V1) and legacy key wrapping."
)


def _check_range(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Validate --range at parse time, so a malformed range is a usage error (exit 2)."""
    if value is not None:
        from cse.exceptions import ConfigurationError
        from cse.ranges import parse_range

        try:
            parse_range(value)
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
progress_option = click.option(
    "--progress/--no-progress", default=True, help="Progress bar on long transfers."
)
format_option = click.option(
    "--format",
    "fmt",
    metavar="NAME",
    help="Format to write: cse-v1, s3-v3, s3-v2, ... or v3/v2 within the store's family "
    "(default: the store's).",
)
instruction_option = click.option(
    "--instruction-file",
    is_flag=True,
    help="Store the key material in KEY.instruction (the Java S3 Encryption Client's layout); s3:// only.",
)


def _check_sse(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Validate --sse at parse time (a usage error, exit 2), in any case and in the stores' spellings."""
    if value is not None:
        from cse.exceptions import ConfigurationError
        from cse.stores.base import parse_sse

        try:
            parse_sse(value)
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _pairs(pairs: Sequence[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not K=V", param_hint=option)
        out[key] = value
    return out


def sse_options(fn: F) -> F:
    """--sse and --sse-key-id (put, cp, migrate, rewrap)."""
    for option in reversed(
        [
            click.option(
                "--sse",
                metavar="MODE",
                callback=_check_sse,
                help="Server-side encryption under cse's: kms, aes256, sm4 (OSS), dsse (S3); any case, or "
                "the store's own value (aws:kms, AES256, KMS, SM4).",
            ),
            click.option(
                "--sse-key-id",
                metavar="ID",
                help="The KMS key of --sse kms or dsse (alone: --sse kms); default: the store's.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def object_options(fn: F) -> F:
    """The object's own settings, as boto3's put_object takes them (put, cp)."""
    for option in reversed(
        [
            click.option("--content-type", metavar="TYPE", help="Content-Type of the stored object."),
            click.option("--content-disposition", metavar="VALUE", help="Content-Disposition."),
            click.option("--cache-control", metavar="VALUE", help="Cache-Control."),
            click.option(
                "--metadata",
                "metadata",
                multiple=True,
                metavar="K=V",
                help="User metadata, stored as it is, not encrypted (repeat). On cp: replaces the source's.",
            ),
            click.option("--tag", "tags", multiple=True, metavar="K=V", help="Object tag (repeat)."),
            click.option(
                "--storage-class",
                metavar="CLASS",
                help="The store's storage class (S3 STANDARD_IA, GLACIER ...; OSS IA, Archive ...).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _settings_kwargs(
    *,
    sse: str | None,
    sse_key_id: str | None,
    content_type: str | None = None,
    content_disposition: str | None = None,
    cache_control: str | None = None,
    tags: Sequence[str] = (),
    storage_class: str | None = None,
) -> dict[str, Any]:
    """The client's keyword arguments of the object options given (none for those not given)."""
    given = {
        "sse": sse,
        "sse_key_id": sse_key_id,
        "content_type": content_type,
        "content_disposition": content_disposition,
        "cache_control": cache_control,
        "tags": _pairs(tags, "--tag") or None,
        "storage_class": storage_class,
    }
    return {k: v for k, v in given.items() if v is not None}


def _target(url: str, instruction_file: bool) -> Any:
    """The object to write: the URL, or (store, key) with the instruction-file layout switched on."""
    if not instruction_file:
        return url
    from cse import registry

    store, key = registry.open_store(url)
    if not hasattr(store, "write_instruction_file"):
        _fail(f"--instruction-file applies to stores that have instruction files (s3://), not {url}", 2)
    store.write_instruction_file = True
    return store, key


policy_option = click.option(
    "--commitment-policy",
    type=click.Choice(
        ["require-encrypt-require-decrypt", "require-encrypt-allow-decrypt", "forbid-encrypt-allow-decrypt"]
    ),
    default="require-encrypt-require-decrypt",
    show_default=True,
    help="Key commitment for the S3 formats, as in the official client: require-encrypt-allow-decrypt reads "
    "S3 V2 objects; forbid-encrypt-allow-decrypt writes them.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cse", prog_name="cse")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log to standard error: -v info, -vv debug (KMS and store requests, cache hits). Never secrets.",
)
@click.option("--log-json", is_flag=True, help="Log as JSON lines (one object per record) for machines.")
@click.option(
    "--profile",
    envvar="CSE_PROFILE",
    show_envvar=True,
    metavar="NAME",
    help="A profile of the config file (default: the profile named default, if any).",
)
@click.option(
    "--config",
    envvar="CSE_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="The config file [default: ~/.config/cse/config.toml].",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, log_json: bool, profile: str | None, config: str | None) -> None:
    """Client-side encryption of objects on S3, OSS and local stores.

    URLs: file:///dir/key, memory://bucket/key (and s3://, oss:// with the cloud extras).
    Keys: rsa:///abs/path/key.pem[?passphrase-env=VAR] (and aws-kms://, aliyun-kms:// with the extras).

    Every option --NAME also reads CSE_NAME from the environment (CSE_KEY, CSE_FORMAT, CSE_CONTEXT ...),
    and then the profile of the config file: an option given wins over its variable, which wins over
    the profile.
    """
    from cse.cli_config import apply_environment
    from cse.log import configure_cli_logging

    configure_cli_logging(verbose, log_json)
    if ctx.resilient_parsing:  # shell completion: no files, no side effects
        return
    assert isinstance(ctx.command, click.Group)
    apply_environment(ctx.command, ctx, config, profile)


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash: eval "$(cse completion bash)"      (in ~/.bashrc)
    zsh:  eval "$(cse completion zsh)"       (in ~/.zshrc)
    fish: cse completion fish > ~/.config/fish/completions/cse.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the choices are click's own shells
    root = click.get_current_context().find_root()
    click.echo(cls(root.command, {}, "cse", "_CSE_COMPLETE").source())


@main.group()
def keygen() -> None:
    """Make local keys."""


@keygen.command("rsa")
@click.option(
    "--private", "private_path", required=True, type=click.Path(dir_okay=False), help="Private PEM."
)
@click.option("--public", "public_path", required=True, type=click.Path(dir_okay=False), help="Public PEM.")
@click.option("--bits", default=3072, show_default=True, type=click.IntRange(2048, 8192))
@click.option("--passphrase-env", metavar="VAR", help="Encrypt the private key with the passphrase in $VAR.")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@json_option
@_handle_errors
def keygen_rsa(
    private_path: str, public_path: str, bits: int, passphrase_env: str | None, overwrite: bool, as_json: bool
) -> None:
    """Write a new RSA key pair (PKCS#8 private key, mode 0600)."""
    from cse import registry

    registry.provider_class("rsa")  # install hint if cse-rsa is missing
    cse_rsa = importlib.import_module("cse_rsa")

    passphrase = None
    if passphrase_env:
        value = os.environ.get(passphrase_env)
        if not value:
            _fail(f"--passphrase-env {passphrase_env}: the variable is not set", 2)
        passphrase = value.encode()
    cse_rsa.generate_keypair(private_path, public_path, bits=bits, passphrase=passphrase, overwrite=overwrite)
    uri = f"rsa://{quote(os.path.abspath(private_path))}" + (
        f"?passphrase-env={quote(passphrase_env)}" if passphrase_env else ""
    )
    _emit(
        as_json,
        {"private": private_path, "public": public_path, "bits": bits, "key_uri": uri},
        f"wrote {private_path} and {public_path} ({bits} bits)\nkey URI: {uri}",
    )


@main.command()
@click.argument("local", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("url")
@key_option
@click.option("--context", "context", multiple=True, metavar="K=V", help="Encryption context entry (repeat).")
@format_option
@policy_option
@instruction_option
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    help="Resumable upload: record progress here (wrapped key material only); rerun to continue.",
)
@sse_options
@object_options
@json_option
@progress_option
@_handle_errors
def put(
    local: str,
    url: str,
    keys: tuple[str, ...],
    context: tuple[str, ...],
    fmt: str | None,
    commitment_policy: str,
    instruction_file: bool,
    checkpoint: str | None,
    sse: str | None,
    sse_key_id: str | None,
    content_type: str | None,
    content_disposition: str | None,
    cache_control: str | None,
    metadata: tuple[str, ...],
    tags: tuple[str, ...],
    storage_class: str | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Encrypt LOCAL (a file, or - for stdin) and store it at URL.

    Large files go multipart; with --checkpoint (oss-v2, cse-v1) an interrupted upload continues from the
    parts already stored when the same command runs again. --sse adds server-side encryption under cse's;
    the other object options are stored as the plain SDK stores them (not encrypted).
    """
    options = _settings_kwargs(
        sse=sse,
        sse_key_id=sse_key_id,
        content_type=content_type,
        content_disposition=content_disposition,
        cache_control=cache_control,
        tags=tags,
        storage_class=storage_class,
    )
    user_metadata = _pairs(metadata, "--metadata") or None
    client = _client(keys, to_keys=keys, format=fmt, commitment_policy=commitment_policy)
    target = _target(url, instruction_file)
    ctx = _parse_context(context)
    if local == "-":
        if checkpoint:
            raise click.UsageError("--checkpoint needs a file to upload, not standard input")
        with _progress(None, "encrypting", False) as cb:
            result = client.put(
                target,
                sys.stdin.buffer,
                encryption_context=ctx,
                callback=cb,
                metadata=user_metadata,
                **options,
            )
    else:
        size = os.path.getsize(local)
        with _progress(size, "encrypting", progress) as cb:
            result = client.upload_file(
                local,
                target,
                encryption_context=ctx,
                callback=cb,
                checkpoint=checkpoint,
                metadata=user_metadata,
                **options,
            )
    data = {
        "url": result.url,
        "size": result.size,
        "stored_size": result.stored_size,
        "etag": result.etag,
        "format": result.envelope.format,
        "parts": result.parts,
        "parts_resumed": result.parts_resumed,
    }
    resumed = f" ({result.parts_resumed} parts were already stored)" if result.parts_resumed else ""
    _emit(as_json, data, f"{result.url}: {result.size} bytes encrypted as {result.envelope.format}{resumed}")


@main.command()
@click.argument("url")
@click.argument("local", type=click.Path(dir_okay=False, allow_dash=True))
@key_option
@click.option("--delayed-authentication", is_flag=True, help="With - : stream before the tag is checked.")
@click.option(
    "--context", "context", multiple=True, metavar="K=V", help="Expected encryption context entry (repeat)."
)
@legacy_option
@policy_option
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    help="Resumable download (oss-v2, cse-v1): record finished parts here; rerun to continue.",
)
@json_option
@progress_option
@_handle_errors
def get(
    url: str,
    local: str,
    keys: tuple[str, ...],
    delayed_authentication: bool,
    context: tuple[str, ...],
    allow_legacy: bool,
    commitment_policy: str,
    checkpoint: str | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Decrypt URL into LOCAL. The file appears only after the whole object verified (with --checkpoint,
    only after every part was written)."""
    expected = _parse_context(context) if context else None
    client = _client(
        keys,
        delayed_authentication=delayed_authentication,
        allow_legacy=allow_legacy,
        commitment_policy=commitment_policy,
    )
    if local == "-":
        if checkpoint:
            raise click.UsageError("--checkpoint needs a file to download into, not standard output")
        for chunk in client.iter_chunks(url, encryption_context=expected):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    size = client.head(url).size
    with _progress(size, "decrypting", progress) as cb:
        head = client.download_file(
            url, local, callback=cb, encryption_context=expected, checkpoint=checkpoint
        )
    _emit(
        as_json,
        {"url": head.url, "path": local, "size": head.size, "format": head.envelope.format},
        f"{local}: {head.size} bytes decrypted and verified ({head.envelope.format})",
    )


@main.command()
@click.argument("url")
@key_option
@click.option(
    "--range",
    "byte_range",
    metavar="A-B|A-|-N",
    callback=_check_range,
    help="Byte range of the plaintext (HTTP rules).",
)
@click.option("--delayed-authentication", is_flag=True, help="Stream before the whole-object tag is checked.")
@click.option(
    "--allow-unauthenticated-ranges",
    is_flag=True,
    help="Allow unverified ranged reads of objects authenticated only as a whole.",
)
@click.option(
    "--context", "context", multiple=True, metavar="K=V", help="Expected encryption context entry (repeat)."
)
@legacy_option
@policy_option
@_handle_errors
def cat(
    url: str,
    keys: tuple[str, ...],
    byte_range: str | None,
    delayed_authentication: bool,
    allow_unauthenticated_ranges: bool,
    context: tuple[str, ...],
    allow_legacy: bool,
    commitment_policy: str,
) -> None:
    """Decrypt URL (or a byte range of it) to stdout."""
    expected = _parse_context(context) if context else None
    client = _client(
        keys,
        delayed_authentication=delayed_authentication,
        allow_unauthenticated_ranges=allow_unauthenticated_ranges,
        allow_legacy=allow_legacy,
        commitment_policy=commitment_policy,
    )
    out = sys.stdout.buffer
    for chunk in client.iter_chunks(url, range=byte_range, encryption_context=expected):
        out.write(chunk)
    out.flush()


@main.command("ls")
@click.argument("url")
@json_option
@_handle_errors
def ls(url: str, as_json: bool) -> None:
    """List the objects under URL (stored sizes)."""
    from cse import registry

    store, prefix = registry.open_store(url)
    rows = [
        {
            "url": store.url(info.key),
            "key": info.key,
            "stored_size": info.size,
            "etag": info.etag,
            "last_modified": info.last_modified.isoformat() if info.last_modified else None,
        }
        for info in store.list(prefix)
    ]
    if as_json:
        _emit(True, rows, "")
        return
    for row in rows:
        click.echo(f"{row['stored_size']:>14}  {row['last_modified'] or '':<32}  {row['url']}")


@main.command()
@click.argument("url")
@legacy_option
@json_option
@_handle_errors
def head(url: str, allow_legacy: bool, as_json: bool) -> None:
    """Show an object's envelope: format, algorithms, sizes, key ids. Never a key."""
    from cse import registry
    from cse.client import head_object

    store, key = registry.open_store(url)
    data = _envelope_dict(head_object(store, key, allow_legacy=allow_legacy))
    _emit(as_json, data, _human_head(data))


@main.command()
@click.argument("url")
@json_option
@_handle_errors
def rm(url: str, as_json: bool) -> None:
    """Delete the object at URL."""
    from cse import registry

    store, key = registry.open_store(url)
    store.head(key)  # a clear error for a wrong URL
    store.delete(key)
    _emit(as_json, {"deleted": store.url(key)}, f"deleted {store.url(key)}")


@main.command()
@click.argument("url")
@click.option("--abort", is_flag=True, help="Abort the uploads listed (their parts are deleted).")
@click.option("--older-than", metavar="AGE", help="Only uploads started at least AGE ago: 90s, 30m, 2h, 7d.")
@json_option
@_handle_errors
def uploads(url: str, abort: bool, older_than: str | None, as_json: bool) -> None:
    """List the unfinished multipart uploads under URL (a prefix): key, upload id, start, parts, bytes.

    A hard-killed put leaves one; with --abort they are aborted. An upload still running elsewhere would
    fail if aborted, so give --older-than when some may be.
    """
    from cse import uploads as unfinished

    age = unfinished.parse_age(older_than) if older_than is not None else None
    found = (unfinished.abort_uploads if abort else unfinished.list_uploads)(url, older_than=age)
    rows = [u.as_dict() for u in found]
    if as_json:
        _emit(True, {"aborted": rows} if abort else rows, "")
        return
    for row in rows:
        click.echo(
            f"{'aborted  ' if abort else ''}{row['initiated'] or '-':<32}  {row['parts']:>5} parts  "
            f"{row['bytes']:>14} bytes  {row['upload_id']}  {row['url']}"
        )
    if not rows:
        click.echo(f"no unfinished uploads under {url}", err=True)


@main.command()
@click.argument("src")
@click.argument("dst")
@key_option
@click.option("--to-key", "to_keys", multiple=True, metavar="KEY_URI", help="Re-wrap for this key (repeat).")
@format_option
@legacy_option
@policy_option
@instruction_option
@sse_options
@object_options
@json_option
@progress_option
@_handle_errors
def cp(
    src: str,
    dst: str,
    keys: tuple[str, ...],
    to_keys: tuple[str, ...],
    fmt: str | None,
    allow_legacy: bool,
    commitment_policy: str,
    instruction_file: bool,
    sse: str | None,
    sse_key_id: str | None,
    content_type: str | None,
    content_disposition: str | None,
    cache_control: str | None,
    metadata: tuple[str, ...],
    tags: tuple[str, ...],
    storage_class: str | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Copy an encrypted object; re-wrap with --to-key (repeat for several), or convert with --format.

    The copy keeps the source's server-side encryption, content type, storage class and tags (across
    clouds, by the rule of docs/server-side-encryption.md); each option given replaces the source's.
    """
    options = _settings_kwargs(
        sse=sse,
        sse_key_id=sse_key_id,
        content_type=content_type,
        content_disposition=content_disposition,
        cache_control=cache_control,
        tags=tags,
        storage_class=storage_class,
    )
    user_metadata = _pairs(metadata, "--metadata") or None
    client = _client(keys, allow_legacy=allow_legacy, commitment_policy=commitment_policy)
    target = _target(dst, instruction_file)
    size = client.head(src).size
    with _progress(size, "copying", progress) as cb:
        result = client.copy(
            src,
            target,
            to_keys=list(to_keys) or None,
            format=fmt,
            callback=cb,
            metadata=user_metadata,
            **options,
        )
    data = {"src": src, "dst": result.url, "size": result.size, "format": result.envelope.format}
    _emit(as_json, data, f"{src} -> {result.url} ({result.size} bytes, {result.envelope.format})")


def _cache_from_options(max_age: float | None, max_objects: int | None, max_bytes: int | None) -> Any:
    """A data-key cache when any --cache-* option is given, else None (caching is off by default)."""
    if max_age is None and max_objects is None and max_bytes is None:
        return None
    from cse.cache import DataKeyCache

    limits: dict[str, Any] = {}
    if max_age is not None:
        limits["max_age"] = max_age
    if max_objects is not None:
        limits["max_objects"] = max_objects
    if max_bytes is not None:
        limits["max_bytes"] = max_bytes
    return DataKeyCache(**limits)


def _migration_table(summary: Any) -> str:
    """The human summary: one line per failed object, then the totals."""
    lines = [f"FAILED {o.src_url}: {o.error}" for o in summary.objects if o.state == "failed"]
    rows = [
        ("copied", summary.copied),
        ("skipped", summary.skipped),
        ("failed", summary.failed),
        ("bytes", summary.bytes),
        ("kms calls", summary.kms_calls),
    ]
    if summary.dry_run:
        rows.insert(0, ("planned", summary.planned))
    rows[3:3] = [(f"  {reason}", n) for reason, n in sorted(summary.failures.items())]
    if summary.recovered:
        rows.append(("found complete", summary.recovered))
    if summary.cse_only:
        rows.append(("readable by cse only", summary.cse_only))
    width = max(len(name) for name, _ in rows)
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines.append(f"{'seconds'.ljust(width)}  {summary.seconds:.1f}")
    return "\n".join(lines)


def _run_migration(src: str, dst: str, *, as_json: bool, progress: bool, cache: Any, **options: Any) -> None:
    from cse.migrate import migrate

    state: dict[str, Any] = {"bar": None, "shown": 0, "started": time.monotonic()}
    show = progress and sys.stderr.isatty() and not options.get("dry_run")

    def report(objects: int, total_objects: int, size: int, total_size: int) -> None:
        if not show:
            return
        bar = state["bar"]
        if bar is None:
            bar = click.progressbar(
                length=max(1, total_size), file=sys.stderr, show_eta=True, show_percent=True
            )
            bar.__enter__()
            state["bar"] = bar
        bar.length = max(1, total_size)  # the Dask engine's totals grow as the listing goes on
        elapsed = max(1e-6, time.monotonic() - state["started"])
        bar.label = f"{objects}/{total_objects} objects, {size / elapsed / 2**20:.1f} MiB/s"
        bar.update(size - state["shown"])
        state["shown"] = size

    try:
        summary = migrate(src, dst, key_cache=cache, progress=report, **options)
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
    _emit(as_json, summary.to_dict(), _migration_table(summary))
    if not summary.ok:
        sys.exit(1)


def engine_options(fn: F) -> F:
    """--engine, --scheduler, --batch-objects and --batch-bytes (cse migrate, cse rewrap)."""
    for option in reversed(
        [
            click.option(
                "--engine",
                type=click.Choice(["local", "dask"]),
                default="local",
                show_default=True,
                help="local: a thread pool here; dask: batches as tasks on a Dask cluster (cse[dask]).",
            ),
            click.option(
                "--scheduler",
                metavar="ADDRESS",
                help="dask: the scheduler (tcp://host:8786; default $DASK_SCHEDULER_ADDRESS, else a "
                "LocalCluster sized to this machine).",
            ),
            click.option(
                "--batch-objects", type=click.IntRange(min=1), help="dask: objects per task (default 1000)."
            ),
            click.option(
                "--batch-bytes",
                type=click.IntRange(min=1),
                help="dask: stored bytes per task (default 1 GiB).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _engine_kwargs(
    engine: str, scheduler: str | None, batch_objects: int | None, batch_bytes: int | None
) -> dict[str, Any]:
    if engine == "local":
        if scheduler or batch_objects or batch_bytes:
            raise click.UsageError("--scheduler, --batch-objects and --batch-bytes need --engine dask")
        return {}
    return {
        "engine": engine,
        "scheduler": scheduler,
        "batch_objects": batch_objects,
        "batch_bytes": batch_bytes,
    }


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--key", "keys", multiple=True, metavar="KEY_URI", help="A key that may decrypt (repeat).")
@click.option("--to-key", "to_keys", multiple=True, metavar="KEY_URI", help="The key for the destination.")
@click.option("--mode", type=click.Choice(["native", "rewrap"]), default="native", show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Objects at once.")
@click.option(
    "--journal", type=click.Path(dir_okay=False), help="SQLite journal: resume where a run stopped."
)
@click.option("--verify", is_flag=True, help="Read every destination object back and compare its SHA-256.")
@click.option("--dry-run", is_flag=True, help="List what would be copied; write nothing.")
@format_option
@click.option(
    "--allow-cse-only", is_flag=True, help="rewrap: allow results only cse reads (another cloud's format)."
)
@legacy_option
@click.option("--cache-max-age", type=click.FloatRange(min=0, min_open=True), help="Data-key cache: seconds.")
@click.option("--cache-max-objects", type=click.IntRange(min=1), help="Data-key cache: objects per key.")
@click.option("--cache-max-bytes", type=click.IntRange(min=1), help="Data-key cache: bytes per key.")
@sse_options
@click.option(
    "--storage-class",
    metavar="CLASS",
    help="The storage class of every destination object, instead of its source's (mapped across clouds).",
)
@engine_options
@json_option
@progress_option
@_handle_errors
def migrate(
    src: str,
    dst: str,
    keys: tuple[str, ...],
    to_keys: tuple[str, ...],
    mode: str,
    workers: int,
    journal: str | None,
    verify: bool,
    dry_run: bool,
    fmt: str | None,
    allow_cse_only: bool,
    allow_legacy: bool,
    cache_max_age: float | None,
    cache_max_objects: int | None,
    cache_max_bytes: int | None,
    sse: str | None,
    sse_key_id: str | None,
    storage_class: str | None,
    engine: str,
    scheduler: str | None,
    batch_objects: int | None,
    batch_bytes: int | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Copy every encrypted object under SRC to DST (any two stores), re-encrypting it (native) or
    re-wrapping its key (rewrap). Exits 1 if any object failed; the others are copied regardless.

    Each object keeps its source's server-side encryption, storage class, content type and tags (across
    clouds: a foreign KMS key id is dropped, storage classes are mapped); --sse, --sse-key-id and
    --storage-class replace them for every object."""
    if not keys:
        _fail("migrate needs --key KEY_URI for the source objects", 2)
    _run_migration(
        src,
        dst,
        as_json=as_json,
        progress=progress,
        cache=_cache_from_options(cache_max_age, cache_max_objects, cache_max_bytes),
        keys=list(keys),
        to_keys=list(to_keys) or None,
        mode=mode,
        workers=workers,
        journal=journal,
        verify=verify,
        dry_run=dry_run,
        format=fmt,
        allow_cse_only=allow_cse_only,
        allow_legacy=allow_legacy,
        **_settings_kwargs(sse=sse, sse_key_id=sse_key_id, storage_class=storage_class),
        **_engine_kwargs(engine, scheduler, batch_objects, batch_bytes),
    )


@main.command()
@click.argument("url")
@click.option("--key", "keys", multiple=True, metavar="KEY_URI", help="The old key (repeat).")
@click.option("--to-key", "to_keys", multiple=True, metavar="KEY_URI", help="The new key.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Objects at once.")
@click.option(
    "--journal", type=click.Path(dir_okay=False), help="SQLite journal: resume where a run stopped."
)
@click.option("--verify", is_flag=True, help="Read every object back and compare its SHA-256.")
@click.option("--dry-run", is_flag=True, help="List what would be re-wrapped; write nothing.")
@legacy_option
@sse_options
@engine_options
@json_option
@progress_option
@_handle_errors
def rewrap(
    url: str,
    keys: tuple[str, ...],
    to_keys: tuple[str, ...],
    workers: int,
    journal: str | None,
    verify: bool,
    dry_run: bool,
    allow_legacy: bool,
    sse: str | None,
    sse_key_id: str | None,
    engine: str,
    scheduler: str | None,
    batch_objects: int | None,
    batch_bytes: int | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Rotate keys in place: re-wrap the content key of every object under URL for --to-key, changing only
    metadata where the store allows (server-side copy). Afterwards the old key is no longer needed.

    Every object keeps its server-side encryption and other settings; --sse (--sse-key-id) changes its
    server-side encryption in the same copy."""
    if not keys or not to_keys:
        _fail("rewrap needs --key OLD_KEY_URI and --to-key NEW_KEY_URI", 2)
    _run_migration(
        url,
        url,
        as_json=as_json,
        progress=progress,
        cache=None,
        keys=list(keys),
        to_keys=list(to_keys),
        mode="rewrap",
        workers=workers,
        journal=journal,
        verify=verify,
        dry_run=dry_run,
        allow_legacy=allow_legacy,
        **_settings_kwargs(sse=sse, sse_key_id=sse_key_id),
        **_engine_kwargs(engine, scheduler, batch_objects, batch_bytes),
    )


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Work here (default: a temp dir).")
@json_option
@_handle_errors
def demo(directory: str | None, as_json: bool) -> None:
    """Run a whole local round trip: key, encrypt into a file:// vault, inspect, decrypt, verify."""
    from cse.demo import run_demo

    report = run_demo(directory, echo=None if as_json else click.echo)
    if as_json:
        _emit(True, report, "")


set_envvars(main)

if __name__ == "__main__":  # pragma: no cover
    main()
