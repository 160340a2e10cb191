"""The Pulumi program under ``pulumi.runtime.set_mocks`` (Nomad and GCP cannot run here): the
stacks, the jobspec, the verdict and schema target, and the lifecycle Nomad would run, replayed
on a real PostgreSQL."""
