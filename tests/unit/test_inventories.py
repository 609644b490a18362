"""The example inventories: production takes its secrets from ansible-vault and refuses a
development one (naming it); remote and production publish only nginx."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, operator_secrets, recap, run, tail

DEV_SECRETS = yaml.safe_load((ROOT / "inventories/airgapped/group_vars/whatsapp/secrets.yml").read_text())
# Validation only: the production host is a documentation address nothing answers on.
LOCAL = ["-e", "ansible_connection=local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]


@pytest.fixture
def production(tmp_path: Path):
    """A copy of inventories/production with a vault made by ansible-vault; returns a
    function writing the vault (encrypted) and giving the ansible-playbook arguments."""
    inventory = tmp_path / "production"
    shutil.copytree(ROOT / "inventories/production", inventory)
    password_file = tmp_path / "vault-password"
    password_file.write_text(secrets.token_urlsafe(16))

    def with_vault(values: dict | None) -> list[str]:
        vault = inventory / "group_vars/whatsapp/vault.yml"
        if values is not None:
            vault.write_text(yaml.safe_dump(values))
            encrypted = run(
                ["ansible-vault", "encrypt", "--vault-password-file", str(password_file), str(vault)]
            )
            assert encrypted.returncode == 0, tail(encrypted)
            assert vault.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
        return ["-i", str(inventory / "hosts.yml"), "--vault-password-file", str(password_file), *LOCAL]

    return with_vault


def test_production_with_vault_secrets_passes_validation(production):
    args = production(operator_secrets())
    result = run(["ansible-playbook", *args, "playbooks/validate.yml"], log="validate-production.log")
    assert result.returncode == 0, tail(result)
    assert recap(result.stdout)["whatsapp-prod-1"]["failed"] == 0
    # The refusal check ran (production), it was not skipped.
    assert "TASK [Refuse development secrets outside development]" in result.stdout
    assert "skipping: [whatsapp-prod-1] => (item=redis_password)" not in result.stdout


def test_production_refuses_one_development_secret_in_the_vault(production):
    values = operator_secrets()
    values["rabbitmq_passwords"]["svc_chat"] = DEV_SECRETS["rabbitmq_passwords"]["svc_chat"]
    result = run(["ansible-playbook", *production(values), "site.yml"], log="validate-production-dev.log")
    assert result.returncode != 0
    assert "rabbitmq_passwords still has a development default" in result.stdout, tail(result)
    assert "Prepare the Docker host" not in result.stdout


def test_staging_refuses_the_development_signing_key_even_without_its_label(production):
    """Not only the prefix: the development key's PEM block alone is refused too, in any
    environment but development."""
    values = operator_secrets()
    dev_key = DEV_SECRETS["whatsapp_jwt_private_key"]
    values["whatsapp_jwt_private_key"] = dev_key[dev_key.index("-----BEGIN") :]
    values["whatsapp_jwt_public_key"] = DEV_SECRETS["whatsapp_jwt_public_key"]
    args = [*production(values), "-e", "whatsapp_environment=staging"]
    result = run(["ansible-playbook", *args, "playbooks/validate.yml"], log="validate-staging-dev-key.log")
    assert result.returncode != 0
    assert (
        "whatsapp_jwt_private_key still has a development default in a staging inventory" in result.stdout
    ), tail(result)


def test_production_without_its_vault_stops_naming_the_missing_secret(production):
    result = run(["ansible-playbook", *production(None), "site.yml"], log="validate-production-none.log")
    assert result.returncode != 0
    # The first role validated (postgres) names its missing secrets.
    assert "missing required arguments: postgres_passwords, postgres_superuser_password" in result.stdout, (
        tail(result)
    )
    assert "Prepare the Docker host" not in result.stdout


@pytest.mark.parametrize("name", ["production", "remote"])
def test_public_inventories_publish_only_nginx_on_every_interface(name):
    settings = yaml.safe_load((ROOT / f"inventories/{name}/group_vars/whatsapp/main.yml").read_text())
    assert settings["whatsapp_publish_internal_ports"] is False
    assert settings["nginx_publish_address"] == "0.0.0.0"  # noqa: S104 (the public host's edge)
    assert not (ROOT / f"inventories/{name}/group_vars/whatsapp/secrets.yml").exists()
