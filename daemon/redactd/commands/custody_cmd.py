"""`redactd keys ...` and `redactd custody ...`: the signing key and the officer's custody commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.commands._common import add_config_arg, config_path
from redactd.config import Custody, load_config
from redactd.custody import report
from redactd.custody.keeper import sign_checkpoint
from redactd.custody.keys import (
    fingerprint,
    init_key,
    load_private_key,
    load_public_key,
    private_pem,
    public_path,
    read_passphrase,
    write_new,
)
from redactd.custody.log import CustodyLog, key_in_force
from redactd.custody.names import Names, names_path
from redactd.custody.proofs import (
    load_json,
    make_bundle,
    make_consistency,
    verify_bundle,
    verify_consistency_doc,
)
from redactd.custody.segments import load_entries
from redactd.custody.verify import verify_log
from redactd.errors import ConfigError, NotInLog
from redactd.fsutil import atomic_write, fsync_dir


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="create or rotate the custody signing key")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    init = ksub.add_parser("init", help="create an Ed25519 key pair: private (mode 0600) and .pub beside it")
    _key_args(init)
    init.set_defaults(func=run_keys_init)
    rotate = ksub.add_parser("rotate", help="new signing key, announced in the log by an entry the old key signs")
    _key_args(rotate)
    rotate.add_argument("--log-dir", type=Path, metavar="DIR", help="custody log (default: custody.directory of the config)")
    rotate.set_defaults(func=run_keys_rotate)

    custody = sub.add_parser("custody", help="verify and read the chain-of-custody log (officer commands)")
    csub = custody.add_subparsers(dest="custody_command", metavar="ACTION", required=True)
    verify = csub.add_parser("verify", help="check chain, signatures and checkpoints; name the first bad entry")
    verify.add_argument("log_dir", metavar="LOG_DIR", nargs="?", type=Path, help="a copy of the log directory")
    _pubkey_arg(verify)
    verify.add_argument("--since", metavar="CHECKPOINT", type=Path,
                        help="a checkpoint kept from an earlier audit: prove the log only grew since")
    verify.add_argument("--witness", metavar="DIR", type=Path, action="append", default=None,
                        help="a witness directory of delivered checkpoints: prove the log consistent with every "
                        "one (repeatable; default: custody.witnesses of the config when no LOG_DIR is given)")
    verify.set_defaults(func=run_verify)
    checkpoint = csub.add_parser("checkpoint", help="sign a checkpoint now (asks the running daemon, or signs "
                                 "it here when none runs) and deliver it to the witnesses")
    checkpoint.add_argument("--timeout", type=float, default=30.0, metavar="S",
                            help="how long to wait for the running daemon (default 30 s)")
    add_config_arg(checkpoint, "daemon config: custody paths, witnesses and the job store's outbox")
    checkpoint.set_defaults(func=run_checkpoint)
    show = csub.add_parser("show", help="one file's history as a timeline")
    show.add_argument("what", metavar="SHA256|JOB_ID", help="raw or output SHA-256, or a job id")
    _log_dir_arg(show)
    _names_arg(show)
    show.set_defaults(func=run_show)
    bundle = csub.add_parser("bundle", help="one file's entries with inclusion proofs and a signed checkpoint")
    bundle.add_argument("sha256", metavar="SHA256")
    bundle.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="bundle file to write (JSON)")
    bundle.add_argument("--with-names", action="store_true",
                        help="add each entry's original file name and salt from the name store (personal data: "
                        "left out unless asked for); verify-bundle checks them against the signed commitments")
    _log_dir_arg(bundle)
    _names_arg(bundle)
    bundle.set_defaults(func=run_bundle)
    vbundle = csub.add_parser("verify-bundle", help="check a bundle with the public key alone")
    vbundle.add_argument("bundle", metavar="BUNDLE", type=Path)
    _pubkey_arg(vbundle)
    vbundle.set_defaults(func=run_verify_bundle)
    rep = csub.add_parser("report", help="an HTML page for a period: files, outcomes, holds, policies")
    rep.add_argument("--from", dest="start", type=_date, required=True, metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
    rep.add_argument("--to", dest="end", type=_date, required=True, metavar="DATE", help="last day, YYYY-MM-DD (UTC, included)")
    rep.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="HTML file to write")
    rep.add_argument("--with-names", action="store_true",
                     help="show original file names (personal data: left out unless asked for)")
    _log_dir_arg(rep)
    _names_arg(rep)
    _pubkey_arg(rep)
    rep.set_defaults(func=run_report)


def _config_arg(p: argparse.ArgumentParser) -> None:
    add_config_arg(p, "daemon config to take custody paths from when not given here")


def _key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", type=Path, metavar="PATH", help="private key file (default: custody.signing_key of the config)")
    p.add_argument("--passphrase-file", type=Path, metavar="FILE", help="encrypt / decrypt the key with this file's content")
    _config_arg(p)


def _log_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-dir", type=Path, metavar="DIR", help="custody log directory (default: custody.directory of the config)")
    _config_arg(p)


def _names_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--names", type=Path, metavar="FILE", help="the name store: original file names, kept out of the "
                   "log (default: LOG_DIR-names.jsonl beside the log directory; copy it with the log to see names)")


def _pubkey_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pubkey", type=Path, metavar="PUB", help="the log's public key (default: the .pub beside the config's "
                   "signing key); trust comes from this file, so take it from a copy you keep")
    if not any(a.dest == "sub_config" for a in p._actions):
        _config_arg(p)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _custody_config(args: argparse.Namespace, missing: str) -> Custody:
    path = config_path(args)
    try:
        return load_config(path).custody
    except ConfigError as exc:
        raise ConfigError(f"{missing} not given, and no config to take it from: {exc}") from None


def _log_dir(args: argparse.Namespace, given: Path | None = None) -> Path:
    given = given or getattr(args, "log_dir", None)
    return given if given else _custody_config(args, "--log-dir").directory


def _names(args: argparse.Namespace, log_dir: Path, entries: list[dict[str, Any]]) -> Names:
    """The name store the officer gave (``--names``), else the one beside the log directory; says
    so when ``entries`` commit to names and there is no such file."""
    path = args.names or names_path(log_dir)
    names = Names.load(path)
    if names.path is None and any(e.get("name_commit") for e in entries):
        print(f"warning: no name store at {path}: original file names show as \"name not available\" "
              f"(copy {names_path(log_dir).name} from beside the log directory, or give --names FILE)",
              file=sys.stderr)
    return names


def _pubkey(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    path = args.pubkey or public_path(_custody_config(args, "--pubkey").signing_key)
    return load_public_key(path)


def _key_and_passphrase(args: argparse.Namespace) -> tuple[Path, bytes | None]:
    if args.key:
        return args.key, read_passphrase(args.passphrase_file)
    cfg = _custody_config(args, "--key")
    return cfg.signing_key, read_passphrase(args.passphrase_file or cfg.passphrase_file)


# --------------------------------------------------------------------------- keys


def run_keys_init(args: argparse.Namespace) -> int:
    path, passphrase = _key_and_passphrase(args)
    key = init_key(path, passphrase)
    print(f"created signing key {path} (mode 0600, {'passphrase-encrypted' if passphrase else 'not encrypted'})")
    print(f"public key {public_path(path)}: give a copy to compliance officers")
    print(f"fingerprint {fingerprint(key.public_key())}")
    return 0


def run_keys_rotate(args: argparse.Namespace) -> int:
    """Generate the next key beside the current one, announce it, then swap the files.

    Each step survives a crash: a leftover ``<key>.next`` is reused, and an announcement already
    in the log is not written twice.
    """
    path, passphrase = _key_and_passphrase(args)
    log_dir = _log_dir(args)
    next_path = path.with_name(path.name + ".next")
    if next_path.exists():
        new_key = load_private_key(next_path, passphrase)
    else:
        load_private_key(path, passphrase)  # fail before creating anything if the current key is unusable
        new_key = Ed25519PrivateKey.generate()
        write_new(next_path, private_pem(new_key, passphrase), 0o600)
    new_id = fingerprint(new_key.public_key())
    if key_in_force(log_dir) != new_id:
        with CustodyLog.open(log_dir, path, passphrase) as log:
            entry = log.rotate_key(new_key)
        print(f"announced key {new_id} in custody entry {entry['seq']}, signed by the old key")
    else:
        print(f"the log already announces {new_id}; completing the interrupted rotation")
    os.replace(next_path, path)
    fsync_dir(path.parent)
    print(f"{path} now holds the new key {new_id}; the old private key is gone")
    print(f"officers keep verifying with the log's first public key ({public_path(path)}): "
          "rotations are followed through the log")
    return 0


# --------------------------------------------------------------------------- custody


def _witnesses(args: argparse.Namespace) -> list[Path]:
    if args.witness is not None:
        return list(args.witness)
    if args.log_dir is not None:
        return []
    try:
        return list(load_config(config_path(args)).custody.witnesses)
    except ConfigError:
        return []


def run_verify(args: argparse.Namespace) -> int:
    log_dir = _log_dir(args)
    pubkey = _pubkey(args)
    result = verify_log(log_dir, pubkey, progress=_progress, witnesses=_witnesses(args))
    for line in result.summary():
        print(line)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.problem is not None:
        print(f"{result.entries} entries verified before the problem below", file=sys.stderr)
        raise result.problem.error()
    cp = result.last_checkpoint
    print(f"custody log OK: {result.entries} entries in {result.segments} segment(s), "
          f"{result.checkpoints} checkpoint(s), {result.tears_recorded} recorded torn tail(s)")
    print(f"keys: {' -> '.join(result.keys)}")
    if cp:
        print(f"last checkpoint: seq {cp['seq']} at {cp['time']}, tree size {cp['details']['tree_size']}, "
              f"root {cp['details']['root']}")
    if args.since:
        old_size, new_size = verify_consistency_doc(make_consistency(log_dir, load_json(args.since)), pubkey)
        print(f"consistent with {args.since}: the tree grew from {old_size} to {new_size} entries "
              "without changing any of the first")
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    cfg = load_config(config_path(args))
    entry, how = sign_checkpoint(cfg, timeout=args.timeout)
    print(f"checkpoint seq {entry['seq']} over {entry['details']['tree_size']} entries, signed {entry['time']} "
          f"({how}); delivered to {len(cfg.custody.witnesses)} witness(es)")
    return 0


def _progress(segment: str, entries: int) -> None:
    if sys.stderr.isatty():
        print(f"  {segment}: {entries} entries verified", file=sys.stderr)


def _subject(args: argparse.Namespace) -> str:
    """A SHA-256, or a job id (any unique prefix, resolved through the config's job store)."""
    from redactd.daemon import store_path
    from redactd.jobops import custody_subject

    try:
        cfg = load_config(config_path(args))
    except ConfigError:
        return custody_subject(None, args.what)  # a copied log with no config: taken as given
    return custody_subject(store_path(cfg), args.what)


def run_show(args: argparse.Namespace) -> int:
    log_dir = _log_dir(args)
    entries = load_entries(log_dir)
    what = _subject(args)
    history = report.history(entries, what)
    if not history and len(what) < 64:  # an id prefix the job store does not know (a copied log)
        ids = sorted({e["job_id"] for e in entries if (e.get("job_id") or "").startswith(what)})
        if len(ids) > 1:
            raise NotInLog(f"job id prefix {args.what!r} is ambiguous in the log; give more of it")
        history = report.history(entries, ids[0]) if ids else []
    if not history:
        raise NotInLog(f"no custody entry mentions {args.what}")
    print(f"{len(history)} entries for {args.what} (read as stored; `redactd custody verify` checks them)")
    names = _names(args, log_dir, history)
    for entry in history:
        print(report.timeline_line(entry, names))
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    log_dir = _log_dir(args)
    names = Names.load(args.names or names_path(log_dir)) if args.with_names else None
    bundle, left_out = make_bundle(log_dir, args.sha256.lower(), names)
    data = json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    atomic_write(args.output, data, 0o600 if names is not None else 0o644)
    print(f"wrote {args.output}: {len(bundle['entries'])} entries, proven against checkpoint seq "
          f"{bundle['checkpoint']['seq']} ({bundle['checkpoint']['time']}), "
          + ("with original file names (personal data)" if names is not None else "without original file names"))
    if left_out:
        print(f"warning: {left_out} newer entries are not in the bundle: no checkpoint covers them yet",
              file=sys.stderr)
    if bundle["names_left_out"]:
        print(f"warning: entries {_seqs(bundle['names_left_out'])} are not in the bundle: written by an older "
              "redactd, they carry the original name in their signed bytes (bundle --with-names to include them)",
              file=sys.stderr)
    if bundle["names_missing"]:
        print(f"warning: the name store ({args.names or names_path(log_dir)}) does not hold the original name of "
              f"entries {_seqs(bundle['names_missing'])}: name not available", file=sys.stderr)
    return 0


def _seqs(seqs: list[int]) -> str:
    return ", ".join(str(s) for s in seqs)


def run_verify_bundle(args: argparse.Namespace) -> int:
    result = verify_bundle(load_json(args.bundle), _pubkey(args))
    print(f"bundle OK: {result.entries} entries for {result.sha256}, each proven included in the log "
          f"under checkpoint seq {result.checkpoint_seq} ({result.checkpoint_time})")
    if result.names:
        print(f"original names: {result.names}, each opens its entry's signed name commitment")
    if result.names_left_out:
        print(f"not in this bundle: entries {_seqs(list(result.names_left_out))}, which carry an original name in "
              "their signed bytes (format 1 or 2); ask for a bundle made --with-names")
    print(f"keys: {' -> '.join(result.keys)}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    if args.end < args.start:
        raise ConfigError(f"--to {args.end} is before --from {args.start}")
    log_dir = _log_dir(args)
    result = verify_log(log_dir, _pubkey(args))
    entries = load_entries(log_dir, strict=False)[: result.entries]  # only what verified counts
    names = _names(args, log_dir, entries) if args.with_names else None
    page = report.render(entries, result, args.start, args.end, names)
    atomic_write(args.output, page.encode("utf-8"), 0o644)
    state = "verified" if result.ok else f"VERIFICATION FAILED: {result.problem}"
    print(f"wrote {args.output} ({args.start} to {args.end}; log {state})")
    return 0
