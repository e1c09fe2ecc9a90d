# HAI Registry from R: a token, a data release, the analysis dataset, a Kaplan-Meier.
#
#   install.packages(c("httr2", "survival"))   # or Debian: apt install r-cran-httr2 r-cran-survival
#   HAI_URL=http://127.0.0.1:8000 HAI_USERNAME=investigator HAI_PASSWORD=demo-password-1 Rscript quickstart.R
#
# With `make run`'s demo registry the defaults work as they are. An investigator reads data releases, each
# frozen at a data cut by the registry coordinator: name one to get the same answer next year.
# The output of a run against the demo registry is in quickstart.R.out.

library(httr2)
library(survival)

setting <- function(name, default) {
  value <- Sys.getenv(name)
  if (nzchar(value)) value else default
}
api <- paste0(sub("/$", "", setting("HAI_URL", "http://127.0.0.1:8000")), "/api/v1")

# 1. A token (12 hours). With two-factor authentication on, add otp = the code from your app.
token <- request(paste0(api, "/auth/token/")) |>
  req_body_json(list(username = setting("HAI_USERNAME", "investigator"),
                     password = setting("HAI_PASSWORD", "demo-password-1"))) |>
  req_perform() |>
  resp_body_json()
registry <- function(path) {
  request(paste0(api, path)) |> req_headers(Authorization = paste("Token", token$token))
}

# 2. The data releases, latest cut first. Pin the one your analysis uses.
released <- registry("/releases/") |> req_perform() |> resp_body_json()
release <- Filter(function(r) isTRUE(r$latest), released)[[1]]
cat(sprintf("release %s (cut %d, checksum %s...)\n", release$name, release$cut_year,
            substr(release$checksum, 1, 12)))

# 3. The analysis dataset: one row per implantation; booleans are 0/1, times whole days.
csv <- registry("/analysis-dataset/") |>
  req_url_query(release = release$name, format = "csv") |>
  req_perform() |>
  resp_body_string()
dataset <- read.csv(text = csv, na.strings = "")
dictionary <- registry("/analysis-dataset/dictionary/") |>
  req_url_query(format = "csv") |> req_perform() |> resp_body_string()
dictionary <- read.csv(text = dictionary, na.strings = "")
cat(sprintf("%d rows, %d columns; e.g.\n", nrow(dataset), ncol(dataset)))
print(dictionary[dictionary$column %in% c("os_days", "os_event", "entry_day"), c("column", "type", "unit")],
      row.names = FALSE)

# 4. Overall survival from the first implantation, one row per patient (os_days is empty on a replacement
#    pump's row), with delayed entry: a patient is at risk from the start of the day of registry consent.
patients <- subset(dataset, !is.na(os_days))
fit <- survfit(Surv(entry_day - 0.5, os_days, os_event) ~ 1, data = patients)
cat(sprintf("overall survival: n=%d, deaths=%d, median %.0f days\n",
            nrow(patients), sum(patients$os_event), summary(fit)$table[["median"]]))

# 5. The registry's own statistic on the same release.
stats <- registry("/stats/survival/") |>
  req_url_query(release = release$name, endpoint = "overall") |>
  req_perform() |> resp_body_json()
overall <- stats$groups[[1]]
cat(sprintf("the registry's survival endpoint: n=%d, median %.0f days\n", overall$n, overall$median_days))

# 6. Whether the pump was ever used (0/1), and a Cox model adjusted for two case-mix variables.
print(table(treated = patients$treated, died = patients$os_event))
cox <- coxph(Surv(entry_day - 0.5, os_days, os_event) ~ treated + extrahepatic_disease, data = patients)
print(summary(cox)$conf.int)
