"""The device agent: frames in, small-model results and escalations out, over a disk outbox."""
