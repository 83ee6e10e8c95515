"""`kith init`, `kith whoami`, `kith passphrase`: creating and guarding an identity."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kith.identity.errors import UsageError
from kith.identity.keys import DEFAULT_NAME, MemberIdentity, clean_display_text
from kith.identity.keystore import KdfParams, KeystoreData
from kith.p2pnet.home import Home
from kith.p2pnet.keyfile import Keystore
from kith.p2pnet.panic import wipe_home
from kith.tui.context import Context
from kith.tui.labels import add_label, prompt_line
from kith.tui.passphrase import ask_existing, ask_new


def register(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser("init", help="create your identity, protected by a passphrase")
    add_label(init, "--name", "display name", help="the display name others see (you can change it later)")
    init.set_defaults(handler=cmd_init)

    whoami = sub.add_parser("whoami", help="show your public identity card and fingerprint")
    whoami.set_defaults(handler=cmd_whoami)

    passphrase = sub.add_parser("passphrase", help="change the passphrase that protects your keys")
    passphrase.add_argument("--new-passphrase-file", help="read the new passphrase from this file instead of asking")
    passphrase.set_defaults(handler=cmd_passphrase)


def _ask_name(explicit: str | None) -> str:
    if explicit is not None:
        return clean_display_text(explicit, max_chars=64, what="display name")
    if not sys.stdin.isatty():
        return DEFAULT_NAME
    name = prompt_line("Display name (what others in your circles see): ", sys.stdin, sys.stderr).strip()
    name = name or DEFAULT_NAME
    return clean_display_text(name, max_chars=64, what="display name")


@contextmanager
def whole_or_nothing(home: Home) -> Iterator[None]:
    """Set up a new home: if anything fails (or Ctrl+C), destroy what was made, so no
    half-made home is left for the next command to trip over."""
    existed = os.path.lexists(home.root)
    before = set(os.listdir(home.root)) if existed and home.root.is_dir() else set()
    try:
        yield
    except BaseException:
        if not existed:
            wipe_home(home.root)
        elif home.root.is_dir():
            for name in set(os.listdir(home.root)) - before:
                path = home.root / name
                if path.is_dir() and not path.is_symlink():
                    wipe_home(path)
                else:
                    path.unlink(missing_ok=True)
        raise


def kdf_params_from_env() -> KdfParams:
    """KDF costs: MODERATE, unless KITH_INSECURE_TEST_KDF=1 (tests and the demo only)."""
    if os.environ.get("KITH_INSECURE_TEST_KDF") == "1":
        from kith.identity.keystore import TEST_KDF

        print("kith: warning: KITH_INSECURE_TEST_KDF=1, the keystore is protected by a weak KDF", file=sys.stderr)
        return TEST_KDF
    return KdfParams()


def cmd_init(ctx: Context, args: argparse.Namespace) -> int:
    home = ctx.home
    if home.exists():
        raise UsageError(f"an identity already exists in {home.root}; use 'kith whoami' to see it")
    name = _ask_name(args.name)
    passphrase = ask_new(ctx.passphrase_file)
    identity = MemberIdentity.generate(name, now=int(time.time()))
    card = identity.card()
    with whole_or_nothing(home):
        home.ensure()
        Keystore.create(home.keystore, passphrase, KeystoreData.generate(identity), kdf_params_from_env())
    ctx.emit(
        {"created": True, "home": str(home.root), "member_id": card.member_id.hex(), "fingerprint": card.fingerprint},
        f"Created identity '{name}' in {home.root}\nFingerprint: {card.fingerprint}\n"
        "Keep your passphrase safe: nobody, not even kith, can recover it.",
    )
    return 0


def unlock(ctx: Context) -> Keystore:
    if not ctx.home.exists():
        raise UsageError(f"no identity in {ctx.home.root}; run 'kith init' first")
    return Keystore.unlock(ctx.home.keystore, ask_existing(ctx.passphrase_file))


def cmd_whoami(ctx: Context, args: argparse.Namespace) -> int:
    keystore = unlock(ctx)
    identity = keystore.data.identity
    if identity is None:
        raise UsageError("this home belongs to a relay and has no member identity")
    card = identity.card()
    ctx.emit(
        {
            "name": card.name,
            "member_id": card.member_id.hex(),
            "fingerprint": card.fingerprint,
            "created": card.created,
            "card": card.to_bytes().hex(),
        },
        f"Name:        {card.name}\n"
        f"Member id:   {card.member_id.hex()}\n"
        f"Fingerprint: {card.fingerprint}\n"
        f"Created:     {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(card.created))}\n"
        f"Card:        {card.to_bytes().hex()}",
    )
    return 0


def cmd_passphrase(ctx: Context, args: argparse.Namespace) -> int:
    from kith.p2pnet.control import socket_in_use

    if socket_in_use(ctx.home.socket):
        # The running node keeps the keystore's key in memory and would write the old one back.
        raise UsageError("stop your node first ('kith stop'), then change the passphrase")
    keystore = unlock(ctx)
    new = ask_new(args.new_passphrase_file)
    keystore.change_passphrase(new, kdf_params_from_env())
    ctx.emit({"changed": True}, "Passphrase changed. The old one no longer opens your keys.")
    return 0
