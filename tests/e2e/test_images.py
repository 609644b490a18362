"""Layer 4: playbooks/images.yml saves the stack's images to tar files and loads them back
(the way to an air-gapped host with no network at all)."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest
from conftest import playbook, tail
from stack_client import GROUP_VARS

pytestmark = pytest.mark.docker

BASE = "whatsapp/base:bookworm"


def image_id(name: str) -> str | None:
    found = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        check=False,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def repo_tags(path) -> list[str]:
    with tarfile.open(path) as archive:
        return [tag for entry in json.load(archive.extractfile("manifest.json")) for tag in entry["RepoTags"]]


def test_images_are_saved_to_tar_files_and_load_back(deployed_stack, tmp_path):
    assert deployed_stack[0].returncode == 0
    redis_image = json.loads(
        subprocess.check_output(["docker", "inspect", GROUP_VARS["redis_container_name"]])
    )[0]["Config"]["Image"]
    saved = playbook(
        "playbooks/images.yml",
        "-e",
        "images_action=save",
        "-e",
        f"images_dir={tmp_path}",
        "-e",
        "images_roles=redis",
        log="images-save.log",
    )
    assert saved.returncode == 0, tail(saved)
    tars = {p.name: p for p in tmp_path.glob("*.tar")}
    assert set(tars) == {
        "whatsapp_base_bookworm.tar",
        redis_image.replace("/", "_").replace(":", "_") + ".tar",
    }
    assert repo_tags(tars["whatsapp_base_bookworm.tar"]) == [BASE]

    # The loading side has lost the base image's name: loading the tar brings the same image back.
    base_id = image_id(BASE)
    assert base_id
    try:
        subprocess.run(["docker", "rmi", BASE], check=True, capture_output=True)
        assert image_id(BASE) is None
        for other in set(tars) - {"whatsapp_base_bookworm.tar"}:
            tars[other].unlink()
        loaded = playbook(
            "playbooks/images.yml",
            "-e",
            "images_action=load",
            "-e",
            f"images_dir={tmp_path}",
            log="images-load.log",
        )
        assert loaded.returncode == 0, tail(loaded)
        assert f"Loaded: {BASE}" in loaded.stdout
        assert image_id(BASE) == base_id
    finally:
        if image_id(BASE) is None:
            subprocess.run(["docker", "tag", base_id, BASE], check=True)


def test_a_bad_action_is_refused():
    result = playbook("playbooks/images.yml", "-e", "images_action=ship", log="images-bad.log")
    assert result.returncode != 0
    assert "images_action must be save or load" in result.stdout
