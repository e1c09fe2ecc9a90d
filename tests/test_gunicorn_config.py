"""Production serves what bench/ measured: one gunicorn configuration for the image, compose and the bench."""

import runpy
from pathlib import Path

from gunicorn.config import Config

ROOT = Path(__file__).resolve().parent.parent


def load(monkeypatch, **env):
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_MAX_REQUESTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config()
    for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_threaded_workers_a_long_timeout_and_recycling_with_jitter(monkeypatch):
    config = load(monkeypatch)
    assert config.worker_class_str == "gthread"
    assert config.threads > 1
    # A full CSV export at 100,000 implantations takes about 10 s; the default 30 s leaves no margin.
    assert config.timeout >= 120
    assert config.max_requests > 0 and 0 < config.max_requests_jitter < config.max_requests


def test_the_environment_sizes_the_server(monkeypatch):
    config = load(monkeypatch, WEB_CONCURRENCY="1", GUNICORN_THREADS="1")
    assert (config.workers, config.threads) == (1, 1)


def test_the_image_compose_and_bench_start_gunicorn_with_it():
    for path in ("Dockerfile", "docker-compose.yml", "bench/page_ratios.py"):
        text = (ROOT / path).read_text()
        assert "gunicorn.conf.py" in text, path
