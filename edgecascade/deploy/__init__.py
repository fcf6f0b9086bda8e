"""Putting EdgeCascade on real machines: a private CA, broker credentials and ACLs, configs.

``edgecascade deploy`` (:mod:`edgecascade.deploy.cli`) drives :mod:`.pki` (CA and certificates),
:mod:`.mosquitto` (password file and ACL entries) and :mod:`.provision` (one identity: its
broker entries and the config files it runs with). The systemd units, broker configurations and
container files they go with are in the repository's ``deploy/`` folder; docs/DEPLOYMENT.md is
the guide.
"""
