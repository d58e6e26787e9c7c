from __future__ import annotations

from pathlib import Path

import pytest

from visionlog.settings import Settings


def test_defaults_point_at_the_local_stack_on_loopback() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka.bootstrap_servers.startswith("127.0.0.1:")
    assert settings.registry.url.startswith("http://127.0.0.1:")
    assert settings.postgres.host == "127.0.0.1"
    assert settings.minio.endpoint.startswith("127.0.0.1:")
    assert settings.qdrant.url is None
    # Non-standard ports, so a developer's own servers are left alone.
    assert settings.postgres.port != 5432
    assert not settings.kafka.bootstrap_servers.endswith(":9092")


def test_environment_points_everything_at_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "VISIONLOG_ENVIRONMENT": "production",
        "VISIONLOG_STATE_DIR": str(tmp_path),
        "VISIONLOG_KAFKA__BOOTSTRAP_SERVERS": "kafka-0.prod:9093,kafka-1.prod:9093",
        "VISIONLOG_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "VISIONLOG_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "VISIONLOG_KAFKA__SASL_USERNAME": "vision",
        "VISIONLOG_KAFKA__SASL_PASSWORD": "s3cret",
        "VISIONLOG_KAFKA__TOPIC_PREFIX": "prod.",
        "VISIONLOG_REGISTRY__URL": "https://registry.prod",
        "VISIONLOG_POSTGRES__HOST": "pg.prod",
        "VISIONLOG_POSTGRES__PORT": "5432",
        "VISIONLOG_MINIO__ENDPOINT": "s3.prod:443",
        "VISIONLOG_MINIO__SECURE": "true",
        "VISIONLOG_QDRANT__URL": "https://qdrant.prod:6333",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    config = settings.kafka.client_config()
    assert config["bootstrap.servers"] == "kafka-0.prod:9093,kafka-1.prod:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "s3cret"
    assert settings.kafka.topic_prefix == "prod."
    assert settings.postgres.port == 5432
    assert "host=pg.prod port=5432" in settings.postgres.conninfo()

    assert settings.minio.secure is True
    assert settings.qdrant.url == "https://qdrant.prod:6333"
    assert settings.state_dir == tmp_path


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONLOG_MINIO__SECRET_KEY", "very-secret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "very-secret" not in repr(settings)
    assert settings.minio.secret_key.get_secret_value() == "very-secret"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("VISIONLOG_TENANT_ID=from-dotenv\nVISIONLOG_POSTGRES__PORT=25432\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.tenant_id == "from-dotenv"
    assert settings.postgres.port == 25432


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONLOG_POSTGRES__PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_conninfo_quotes_awkward_passwords() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from visionlog.settings import PostgresSettings

    awkward = PostgresSettings(password="it's a pass word\\")  # type: ignore[arg-type]
    parsed = conninfo_to_dict(awkward.conninfo("other"))
    assert parsed["password"] == "it's a pass word\\"
    assert parsed["dbname"] == "other"
