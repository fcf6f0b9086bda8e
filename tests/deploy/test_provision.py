"""``edgecascade deploy``: certificates, password lines, ACL blocks and env files, and bad input."""

from __future__ import annotations

import ipaddress
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from edgecascade.cli import main
from edgecascade.deploy.errors import DeployError
from edgecascade.deploy.mosquitto import (
    check_password,
    device_acl,
    hash_password,
    remove_user,
)
from edgecascade.deploy.pki import ensure_ca, issue
from edgecascade.deploy.provision import BrokerFiles, Endpoint, provision_device
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.shared.errors import ContractError
from tests.deploy.installed import settings_from_env_file


def test_password_hashes_match_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "u", "s3cret"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert check_password(theirs, "s3cret") and not check_password(theirs, "s3cret!")
    assert check_password(hash_password("s3cret"), "s3cret")


def test_a_devices_acl_is_derived_from_the_contract_as_written_by_hand_before() -> None:
    """The rules come from the contract table's device rows; this is the list they replaced (a
    row that names a new device publisher or reader must change it on purpose)."""
    assert device_acl("site1", "cam1", "gw", prefix="p").rules == (
        ("write", "p/v1/site1/cam1/state"),
        ("write", "p/v1/site1/cam1/result"),
        ("write", "p/v1/site1/cam1/escalation"),
        ("write", "p/v1/site1/cam1/telemetry"),
        ("write", "p/v1/site1/cam1/model/request"),
        ("write", "p/v1/site1/cam1/model/ack"),
        ("write", "p/v1/site1/cam1/reply/+"),
        ("read", "p/v1/site1/cam1/ack"),
        ("read", "p/v1/site1/cam1/verdict"),
        ("read", "p/v1/site1/cam1/model/offer"),
        ("read", "p/v1/site1/cam1/model/chunk"),
        ("read", "p/v1/site1/cam1/cmd/+"),
        ("read", "p/v1/site1/gw/state"),
    )


def test_provisioning_again_replaces_only_that_device(tmp_path: Path) -> None:
    broker = BrokerFiles(tmp_path / "broker")
    endpoint = Endpoint("site-broker.local", 8883, Path("/etc/edgecascade/ca.crt"))
    for cam in ("cam1", "cam2", "cam1"):
        env = provision_device("site1", cam, broker, endpoint, tmp_path / cam)
    users = [line.split(":", 1)[0] for line in broker.passwd.read_text().splitlines()]
    assert sorted(users) == ["site1/cam1", "site1/cam2"]
    acl = broker.acl.read_text()
    assert acl.count("user site1/cam1\n") == 1 and acl.count("user site1/cam2\n") == 1
    assert device_acl("site1", "cam1", "gateway").render() in acl
    settings = settings_from_env_file(AgentSettings, env)
    assert (settings.site, settings.device, settings.mqtt.username) == (
        "site1",
        "cam1",
        "site1/cam1",
    )
    assert settings.mqtt.password is not None
    line = next(x for x in broker.passwd.read_text().splitlines() if x.startswith("site1/cam1:"))
    assert check_password(line.split(":", 1)[1], settings.mqtt.password.get_secret_value())
    assert settings.mqtt.uses_tls and settings.mqtt.port == 8883
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_a_bad_device_id_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    broker = BrokerFiles(tmp_path / "broker")
    with pytest.raises(ContractError, match="'cam#1'"):
        provision_device("site1", "cam#1", broker, Endpoint("h", 8883), tmp_path / "out")
    assert not broker.directory.exists() and not (tmp_path / "out").exists()


def test_provisioned_tags_reach_the_agents_settings_and_bad_ones_are_refused(
    tmp_path: Path,
) -> None:
    broker = BrokerFiles(tmp_path / "broker")
    endpoint = Endpoint("h", 8883)
    env = provision_device(
        "site1", "cam1", broker, endpoint, tmp_path / "cam1", tags=["zone:north", "pilot"]
    )
    assert "EC_AGENT_TAGS=zone:north,pilot\n" in env.read_text()
    assert settings_from_env_file(AgentSettings, env).tags == ["zone:north", "pilot"]
    with pytest.raises(DeployError, match=r"tags\.0: String should match pattern"):
        provision_device("site1", "cam2", broker, endpoint, tmp_path / "cam2", tags=["a b"])


def test_certificates_chain_to_the_ca_and_name_the_hosts(tmp_path: Path) -> None:
    ca, created = ensure_ca(tmp_path)
    assert created and not ensure_ca(tmp_path)[1]  # reused the second time
    server = issue(tmp_path, "site-broker", server_hosts=["broker.local", "10.0.0.2"])
    client = issue(tmp_path, "site1.cam1")
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    for issued in (server, client):
        cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
        assert stat.S_IMODE(issued.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(server.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.local"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.2")]
    assert stat.S_IMODE(ca.key.stat().st_mode) == 0o600


def test_the_command_names_a_bad_server_spec_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = tmp_path / "pki"
    assert main(["deploy", "pki", str(pki), "--server", "broker=bad_host.local"]) == 2
    assert "'bad_host.local'" in capsys.readouterr().err
    assert main(["deploy", "pki", str(pki), "--server", "no-hosts"]) == 2
    assert "'no-hosts'" in capsys.readouterr().err
    assert not pki.exists()
    assert main(["deploy", "pki", str(pki), "--server", "b=localhost", "--client", "c1"]) == 0
    assert {p.name for p in pki.iterdir()} == {
        "ca.crt",
        "ca.key",
        "b.crt",
        "b.key",
        "c1.crt",
        "c1.key",
    }


def test_revoking_removes_only_that_identity(tmp_path: Path) -> None:
    broker = BrokerFiles(tmp_path / "broker")
    for cam in ("cam1", "cam2"):
        provision_device("site1", cam, broker, Endpoint("h", 8883), tmp_path / cam)
    remove_user(broker.passwd, broker.acl, "site1/cam1")
    assert [x.split(":")[0] for x in broker.passwd.read_text().splitlines()] == ["site1/cam2"]
    assert (
        "site1/cam1" not in broker.acl.read_text() and "user site1/cam2\n" in broker.acl.read_text()
    )
    with pytest.raises(DeployError, match="'site1/cam1' is not in"):
        remove_user(broker.passwd, broker.acl, "site1/cam1")
