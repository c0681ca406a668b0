"""Jobs: backups defined in a config file, run by hand, by a scheduler, or by ``fogvault daemon``.

The library behind ``fogvault config|run|schedule|daemon|status`` (docs/scheduling.md):

* :mod:`~fogvault.jobs.config` loads and validates the TOML config file (the model and its
  keys), through :mod:`~fogvault.jobs.toml_reader` (typed tables, every problem with its line);
  :mod:`~fogvault.jobs.config_show` prints the effective config;
* :mod:`~fogvault.jobs.schedule` parses schedules (cron, ``daily``..., ``every 10s``) and
  computes next runs;
* :mod:`~fogvault.jobs.runner` runs one job: backup, forget, prune/check when due, hooks, pings,
  one summary and one exit code, under a per-job lock (:mod:`~fogvault.jobs.joblock`);
* :mod:`~fogvault.jobs.status` keeps the JSON-lines run log and the Prometheus metrics;
* :mod:`~fogvault.jobs.systemd` and :mod:`~fogvault.jobs.cron` install schedules;
* :mod:`~fogvault.jobs.daemon` runs every job on its schedule in the foreground.
"""
