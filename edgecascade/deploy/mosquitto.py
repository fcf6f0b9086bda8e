"""Mosquitto password file and ACL entries, written the way Mosquitto 2 reads them.

Password lines are ``user:$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512 over a 12-byte
salt, base64, the format ``mosquitto_passwd`` writes (so the broker machine does not need that
tool). The ACL file is a sequence of blocks, one per user, each preceded by a comment naming
what it is for; provisioning an identity again replaces its line and its block, nothing else.

What each identity may do (``prefix/v1/<site>/<device>/...``, the contract's topics):

* a **device** publishes only under its own id, and only the kinds whose row in
  :data:`shared.contract.KINDS` names a device as publisher (``state``, ``result``,
  ``escalation``, ``telemetry``, ``model/request``, ``model/ack``, ``reply/+``); it reads only
  the kinds sent down to it under its own id (``verdict``, ``model/offer``, ``model/chunk``,
  ``cmd/+``) and its gateway's ``state``;
* a **gateway** reads and writes everything of its site (on the site and the cloud broker);
* the **cloud** services read and write every site, and their own ``prefix/cloud/#`` (alerts).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgecascade.deploy.errors import DeployError
from edgecascade.deploy.files import write_file
from edgecascade.shared.contract import KINDS, Direction, KindSpec, Role
from edgecascade.shared.topics import VERSION, topic_filter, validate_id

# mosquitto_passwd uses 101 iterations; the broker accepts any count and checks a password once
# per connection, so a stronger work factor costs little.
ITERATIONS = 10_000
SALT_BYTES = 12


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The Mosquitto 2 (``$7$``) hash of ``password``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(hashed: str, password: str) -> bool:
    """True if ``password`` matches a ``$7$`` line's hash (what the broker will decide)."""
    try:
        _, kind, iterations, salt, _digest = hashed.split("$")
        if kind != "7":
            return False
        ours = hash_password(password, iterations=int(iterations), salt=base64.b64decode(salt))
    except ValueError:
        return False
    return secrets.compare_digest(ours, hashed)


def validate_username(username: str) -> str:
    if not username or any(ch in username for ch in ":\n\r\0") or username != username.strip():
        raise DeployError(
            f"invalid MQTT user name {username!r}: no ':', line breaks or surrounding spaces"
        )
    return username


def set_password(passwd_file: Path, username: str, password: str) -> None:
    """Add ``username`` to a Mosquitto password file, or replace its line."""
    validate_username(username)
    lines = passwd_file.read_text().splitlines() if passwd_file.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != username]
    kept.append(f"{username}:{hash_password(password)}")
    write_file(passwd_file, "\n".join(kept) + "\n", mode=0o640)


@dataclass(frozen=True, slots=True)
class AclBlock:
    """One user's ACL entries: ``(access, topic filter)`` pairs."""

    username: str
    comment: str
    rules: tuple[tuple[str, str], ...]

    def render(self) -> str:
        lines = [f"# {self.comment}", f"user {self.username}"]
        lines += [f"topic {access} {filter_}" for access, filter_ in self.rules]
        return "\n".join(lines)


def device_username(site: str, device: str) -> str:
    """A device's broker user: ``<site>/<device>`` (ids have no ``/``, so it is unambiguous)."""
    return f"{validate_id(site, 'site id')}/{validate_id(device, 'device id')}"


def device_acl(site: str, device: str, gateway_id: str, prefix: str = "ec") -> AclBlock:
    """A camera: the contract's rows a device publishes, under its own id, to write; the rows it
    reads to read: those sent down to it under its own id, and the upward ones (state) of its
    gateway."""
    validate_id(gateway_id, "gateway id")

    def level(spec: KindSpec, owner: str) -> str:
        return topic_filter(spec.kind, site=site, device=owner, sub=spec.level, prefix=prefix)

    writes = [level(spec, device) for spec in KINDS.values() if Role.DEVICE in spec.publishers]
    read = [spec for spec in KINDS.values() if Role.DEVICE in spec.readers]
    reads = [level(spec, device) for spec in read if spec.direction is Direction.DOWN]
    reads += [level(spec, gateway_id) for spec in read if spec.direction is Direction.UP]
    return AclBlock(
        device_username(site, device),
        f"edgecascade device {site} {device}",
        tuple([("write", t) for t in writes] + [("read", t) for t in reads]),
    )


def site_filter(site: str, prefix: str = "ec") -> str:
    """Every topic of one site."""
    return f"{validate_id(prefix, 'topic prefix')}/{VERSION}/{validate_id(site, 'site id')}/#"


def gateway_acl(site: str, gateway_id: str, prefix: str = "ec") -> AclBlock:
    """A site gateway: its whole site, both ways (it relays for every device of the site)."""
    return AclBlock(
        device_username(site, gateway_id),
        f"edgecascade gateway {site} {gateway_id}",
        (("readwrite", site_filter(site, prefix)),),
    )


def cloud_acl(username: str, prefix: str = "ec") -> AclBlock:
    """The cloud services (ingest, API, workers, distributor): every site, both ways; and the
    cloud's own topics, ``<prefix>/cloud/#`` (alerts: ``alerts.mqtt_topic`` goes under it)."""
    validate_username(username)
    prefix = validate_id(prefix, "topic prefix")
    return AclBlock(
        username,
        f"edgecascade cloud {username}",
        (("readwrite", f"{prefix}/{VERSION}/#"), ("readwrite", f"{prefix}/cloud/#")),
    )


def set_acl(acl_file: Path, block: AclBlock) -> None:
    """Add ``block`` to an ACL file, replacing the block of the same user."""
    blocks = acl_file.read_text().split("\n\n") if acl_file.exists() else []
    kept = [b.strip("\n") for b in blocks if b.strip() and _user_of(b) != block.username]
    kept.append(block.render())
    write_file(acl_file, "\n\n".join(kept) + "\n", mode=0o644)


def remove_user(passwd_file: Path, acl_file: Path, username: str) -> None:
    """Take ``username``'s password line and ACL block out; :class:`DeployError` if it has none."""
    lines = passwd_file.read_text().splitlines() if passwd_file.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != username]
    if len(kept) == len(lines):
        raise DeployError(f"user {username!r} is not in {passwd_file}")
    blocks = acl_file.read_text().split("\n\n") if acl_file.exists() else []
    kept_blocks = [b.strip("\n") for b in blocks if b.strip() and _user_of(b) != username]
    write_file(passwd_file, "".join(f"{line}\n" for line in kept), mode=0o640)
    write_file(acl_file, "\n\n".join(kept_blocks) + "\n", mode=0o644)


def _user_of(block: str) -> str | None:
    for line in block.splitlines():
        if line.startswith("user "):
            return line.removeprefix("user ").strip()
    return None


def new_password() -> str:
    """A random password (192 bits), safe in TOML, environment files and URLs."""
    return secrets.token_urlsafe(24)
