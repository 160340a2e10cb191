# The API job. Pulumi (infra/api_job.py) passes every variable without a default through
# hcl2.vars, derived from the stack's config and from one setting, migrationTimeout
# (infra/deadlines.py). None of those has a default here, so no second value can drift from
# the one in Pulumi.yaml or infra/. The defaults below are the API task's resources and drain
# time, which no stack setting changes: change them here. Secrets are never variables: both
# tasks read them from the Nomad Variable at the group's path.

variable "datacenters" {
  type        = list(string)
  description = "Datacenters the API may run in."
}

variable "node_pool" {
  type        = string
  description = "Node pool of the API clients."
}

variable "api_image" {
  type        = string
  description = "The API's container image, by digest or immutable tag."
}

variable "api_count" {
  type        = number
  description = "Number of API allocations."
}

variable "api_port" {
  type        = number
  description = "Static port the API listens on."
}

variable "api_args" {
  type        = list(string)
  description = "Arguments of the API's container; e2b's API takes --port."
}

variable "api_env" {
  type        = map(string)
  description = "Plain environment of the API task."
}

variable "api_distinct_hosts" {
  type        = bool
  description = "At most one API allocation per node."
}

variable "api_cpu" {
  type        = number
  description = "CPU of the API task, MHz."
  default     = 1000
}

variable "migrator_memory" {
  type        = number
  description = "Memory reserved for the db-migrator task, MiB: sized from the largest migration file (infra/task_memory.py)."
}

variable "api_memory" {
  type        = number
  description = "Memory reserved for the API task, MiB."
  default     = 1024
}

variable "api_memory_max" {
  type        = number
  description = "Memory the API task may use when the node has it free, MiB (twice the reservation, as e2b's job)."
  default     = 2048
}

variable "api_kill_timeout" {
  type        = string
  description = "Time the API gets to drain after SIGTERM; beyond the client's max_kill_timeout (30s by default) needs client config."
  default     = "30s"
}

variable "canary" {
  type        = number
  description = "Canary allocations of an update; 0 is a rolling update that stops an old allocation before starting its replacement."
}

variable "min_healthy_time" {
  type        = string
  description = "How long a new allocation must stay healthy before the update moves on."
}

variable "healthy_deadline" {
  type        = string
  description = "Longer than the migrator's lock wait plus its longest run, plus image pulls and the API's start."
}

variable "progress_deadline" {
  type        = string
  description = "Longer than healthy_deadline (Nomad requires it)."
}

variable "migrator_image" {
  type        = string
  description = "The db-migrator image, pinned by digest (name@sha256:...)."
}

variable "migrations_hash" {
  type        = string
  description = "Content hash of the migrator image, recorded in the job's meta."
}

variable "migrator_args" {
  type        = list(string)
  description = "The migrator's command: migrate-to the stack's migrateTo, with its advisory-lock wait and whole-run budget (and --allow-down with the rollback's id when the stack allows it)."
}

variable "migrator_deployment" {
  type        = string
  description = "Digest of the db-migrator task below as Nomad runs it (this variable left out): every run records it (MIGRATOR_DEPLOYMENT), and pulumi up's verdict is keyed to it."
}

variable "settings_digest" {
  type        = string
  description = "Digest of every part of the group Nomad replaces allocations for (the tasks, the network, this meta but itself): a refresh reads it back, so a reverted deployment is seen."
}

variable "reschedule_attempts" {
  type        = number
  description = "Replacements of a failed allocation within reschedule_interval; then Nomad fails the deployment and reverts it."
}

variable "reschedule_interval" {
  type        = string
  description = "Long enough to hold every attempt of one allocation."
}

variable "reschedule_delay" {
  type        = string
  description = "Wait before a failed allocation is replaced."
}

variable "migrator_statement_timeout" {
  type        = string
  description = "statement_timeout of each migration (MIGRATOR_STATEMENT_TIMEOUT)."
}

variable "migrator_db_lock_timeout" {
  type        = string
  description = "lock_timeout of each migration (MIGRATOR_DB_LOCK_TIMEOUT)."
}

variable "migrator_lock_retries" {
  type        = string
  description = "Retries of a file blocked by a lock (MIGRATOR_LOCK_RETRIES)."
}

variable "secrets_path" {
  type        = string
  description = "Nomad Variable with database_url and the API's secrets. The group's path: both tasks may read it without any policy."
}

variable "secrets_version" {
  type        = string
  description = "Version of that Variable's content, a keyed hash (infra/variable_version.py): it changes exactly when a secret does."
}

job "api" {
  type        = "service"
  datacenters = var.datacenters
  node_pool   = var.node_pool
  priority    = 90

  group "api-service" {
    count = var.api_count

    # Read back on every refresh: what Nomad runs, whatever Pulumi's state says was submitted.
    meta {
      migrator_image      = var.migrator_image
      migrations_hash     = var.migrations_hash
      migrator_deployment = var.migrator_deployment
      settings_digest     = var.settings_digest
    }

    network {
      port "api" {
        static = var.api_port
      }
    }

    dynamic "constraint" {
      for_each = var.api_distinct_hosts ? [true] : []
      content {
        operator = "distinct_hosts"
        value    = "true"
      }
    }

    # With canaries, the new version's migrator runs while the old allocations still serve;
    # a failed canary fails the deployment, and Nomad reverts to the last stable version.
    update {
      max_parallel      = 1
      canary            = var.canary
      auto_promote      = var.canary > 0
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = var.min_healthy_time
      healthy_deadline  = var.healthy_deadline
      progress_deadline = var.progress_deadline
    }

    # Only a failed migrator fails an allocation (the API task restarts in place, below): it is
    # replaced reschedule_attempts times, then Nomad fails the deployment at once and
    # auto_revert puts back the stable version, whose migrator finds the database ahead of its
    # files and applies nothing. A lost node's allocations are replaced whatever this says.
    reschedule {
      unlimited      = false
      attempts       = var.reschedule_attempts
      interval       = var.reschedule_interval
      delay          = var.reschedule_delay
      delay_function = "constant"
    }

    # The API task restarts in place for ever, at most 3 times in 5 minutes: a crashed API is
    # replaced where it runs, and never spends the migrator's few reschedules.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    task "db-migrator" {
      driver = "docker"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        image        = var.migrator_image
        network_mode = "host"
        args         = var.migrator_args
      }

      env {
        # Recorded with each run (NOMAD_ALLOC_ID too): `pulumi up` reads its verdict by the deployment.
        MIGRATOR_DEPLOYMENT        = var.migrator_deployment
        MIGRATOR_IMAGE             = var.migrator_image
        MIGRATOR_STATEMENT_TIMEOUT = var.migrator_statement_timeout
        MIGRATOR_DB_LOCK_TIMEOUT   = var.migrator_db_lock_timeout
        MIGRATOR_LOCK_RETRIES      = var.migrator_lock_retries
        # The Variable's version: a new database URL or secret changes this task, so Nomad
        # replaces every allocation (the API's task with it, one at a time under the update
        # block: scheduler tasksUpdated), and the verdict waits for the migrator's run with it.
        MIGRATOR_SECRETS_VERSION   = var.secrets_version
      }

      # Never retried in place: a failed run fails the allocation (the migrator rolled the
      # file back), and the deployment decides what happens next.
      restart {
        attempts = 0
        mode     = "fail"
      }

      # nomadVar on a missing path blocks the template forever; check first and fail fast.
      template {
        destination = "secrets/database.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
        {{- if nomadVarExists "${var.secrets_path}" -}}
        {{- with nomadVar "${var.secrets_path}" -}}
        POSTGRES_CONNECTION_STRING={{ .database_url | toJSON }}
        {{- end -}}
        {{- else -}}
        MIGRATOR_MISSING_DATABASE="Nomad variable ${var.secrets_path} does not exist: run pulumi up for this stack"
        {{- end }}
        EOT
      }

      resources {
        cpu    = 250
        memory = var.migrator_memory
      }

      logs {
        max_files     = 3
        max_file_size = 5
      }
    }

    task "start" {
      driver       = "docker"
      kill_timeout = var.api_kill_timeout
      kill_signal  = "SIGTERM"

      config {
        image        = var.api_image
        network_mode = "host"
        ports        = ["api"]
        args         = var.api_args
      }

      env = var.api_env

      # The database URL (written once, for both tasks) and the API's secrets. Only the
      # prestart task reports a missing variable; start never runs without it. A new value never
      # restarts a running allocation: "restart" would restart every one of them within the
      # splay (5 s), a full outage. MIGRATOR_SECRETS_VERSION replaces the allocations instead, one by one.
      template {
        destination = "secrets/api.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
        {{- if nomadVarExists "${var.secrets_path}" -}}
        {{- with nomadVar "${var.secrets_path}" -}}
        {{- range .Tuples }}
        {{- if eq .K "database_url" }}
        POSTGRES_CONNECTION_STRING={{ .V | toJSON }}
        AUTH_DB_CONNECTION_STRING={{ .V | toJSON }}
        {{- else }}
        {{ .K }}={{ .V | toJSON }}
        {{- end }}
        {{- end }}
        {{- end -}}
        {{- end }}
        EOT
      }

      service {
        name     = "api"
        port     = "api"
        provider = "nomad"

        check {
          type     = "http"
          name     = "health"
          path     = "/health"
          interval = "3s"
          timeout  = "3s"
        }
      }

      resources {
        cpu        = var.api_cpu
        memory     = var.api_memory
        memory_max = var.api_memory_max
      }
    }
  }
}
