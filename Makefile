# The team's verbs, each a thin call of the real command (README: "Everyday commands: `make`").
#   make migration NAME=add_widgets    python -m migrator create add_widgets
#   make preview ENV=staging           pulumi preview --stack staging
#   make up ENV=prod                   pulumi up --stack prod
#   make status ENV=staging            pulumi stack output --stack staging
#   make dev / make dev-down           dev/up.sh / dev/down.sh (the local stack)
#   make test                          bash .ci/test
# ENV=dev runs Pulumi through dev/pulumi, which selects the dev stack's local backend.

ENV ?=
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
PULUMI = $(if $(filter dev,$(ENV)),dev/pulumi,pulumi)

.PHONY: migration preview up status dev dev-down test create-migration build-and-upload deploy-api

stack = $(if $(filter staging prod dev,$(ENV)),$(ENV),$(error ENV must be staging, prod or dev, got '$(ENV)'))

migration:
	$(if $(NAME),,$(error NAME is required: make migration NAME=add_widgets))
	$(PYTHON) -m migrator create $(NAME)

preview:
	$(PULUMI) preview --stack $(stack)

up:
	$(PULUMI) up --stack $(stack)

status:
	$(PULUMI) stack output --stack $(stack)

dev:
	dev/up.sh

dev-down:
	dev/down.sh

test:
	bash .ci/test

# The old routine's verbs say what replaced them rather than half-doing it.
create-migration build-and-upload deploy-api:
	@case $@ in \
	  create-migration) echo "now: make migration NAME=add_x" ;; \
	  build-and-upload) echo "now: part of make up ENV=$(or $(ENV),staging) (make preview shows whether the image is rebuilt)" ;; \
	  deploy-api) echo "now: make up ENV=$(or $(ENV),staging) (builds and pushes when changed, deploys, waits)" ;; \
	esac >&2; exit 2
