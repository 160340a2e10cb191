"""The whole system in processes: the image built and run by a real Docker engine and the dev
stack (skipped without ``DOCKER_HOST``/``TEST_REGISTRY``; .ci/run provides them)."""
