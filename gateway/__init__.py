"""The site gateway: validates device traffic and forwards it to the cloud, store-and-forward."""
