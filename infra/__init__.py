"""The Pulumi program's parts: the stack config, the migrator image and its registry, the Nomad
job, and what the database reports back. It imports from ``migrator``, never the reverse."""
