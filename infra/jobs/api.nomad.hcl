# The API job. Pulumi (infra/api_job.py) passes every variable through hcl2.vars; the
# database URL is never one of them: the migrator reads it from a Nomad Variable.

variable "datacenters" {
  type        = list(string)
  description = "Datacenters the API may run in."
  default     = ["*"]
}

variable "node_pool" {
  type        = string
  description = "Node pool of the API clients."
  default     = "api"
}

variable "api_image" {
  type        = string
  description = "The API's container image."
}

variable "api_count" {
  type        = number
  description = "Number of API allocations."
  default     = 1
}

variable "api_port" {
  type        = number
  description = "Port the API listens on."
  default     = 80
}

variable "migrator_image" {
  type        = string
  description = "The db-migrator image, pinned by digest (name@sha256:...)."
}

variable "database_variable_path" {
  type        = string
  description = "Nomad Variable holding database_url; the task's own path grants it read access."
  default     = "nomad/jobs/api/api-service/db-migrator"
}

job "api" {
  type        = "service"
  datacenters = var.datacenters
  node_pool   = var.node_pool
  priority    = 90

  group "api-service" {
    count = var.api_count

    network {
      port "api" {
        static = var.api_port
      }
    }

    # One canary runs the migrator first; if it fails, the deployment fails and reverts.
    update {
      max_parallel      = 1
      canary            = 1
      auto_promote      = true
      auto_revert       = true
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
    }

    # A failed migration must fail the deployment, not be retried on other nodes forever.
    reschedule {
      attempts  = 0
      unlimited = false
    }

    restart {
      attempts = 2
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
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
        args         = ["up", "--lock-timeout", "10m"]
      }

      # Migrations are not retried blindly: one more attempt covers a lost connection.
      restart {
        attempts = 1
        delay    = "15s"
        mode     = "fail"
      }

      # nomadVar on a missing path blocks the template forever; check first and fail fast.
      template {
        destination = "secrets/database.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
        {{- if nomadVarExists "${var.database_variable_path}" -}}
        {{- with nomadVar "${var.database_variable_path}" -}}
        POSTGRES_CONNECTION_STRING={{ .database_url | toJSON }}
        {{- end -}}
        {{- else -}}
        MIGRATOR_MISSING_DATABASE="Nomad variable ${var.database_variable_path} does not exist: run pulumi up for this stack"
        {{- end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }

      logs {
        max_files     = 3
        max_file_size = 5
      }
    }

    task "start" {
      driver = "docker"

      config {
        image        = var.api_image
        network_mode = "host"
        ports        = ["api"]
      }

      env {
        PORT = "${NOMAD_PORT_api}"
      }

      service {
        name     = "api"
        port     = "api"
        provider = "nomad"

        check {
          type     = "http"
          path     = "/health"
          interval = "10s"
          timeout  = "3s"
        }
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
