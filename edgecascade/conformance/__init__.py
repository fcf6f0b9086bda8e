"""``edgecascade conformance run``: drive any agent, in any language, through the MQTT contract.

The suite starts a real site (a Mosquitto site broker provisioned the way ``edgecascade deploy``
does it, with a websockets listener beside the TCP one; a real gateway process; a cloud broker on
which the suite plays the cloud), launches the agent under test from a shell command with its
connection settings in ``EC_CONFORMANCE_*`` environment variables (:mod:`.agent`), and reports
one row per check: pass, fail or skip, with the reason (:mod:`.report`).

Layout: :mod:`.site` (brokers, credentials, gateway, signing keys), :mod:`.recorder` (what each
broker carried), :mod:`.cloud` (the suite's cloud side: verdicts, commands, offers, the model
distributor), :mod:`.checks_uplink`, :mod:`.checks_downlink`, :mod:`.checks_offers` (the checks),
:mod:`.runner` (the order they run in) and :mod:`.cli`.
"""
