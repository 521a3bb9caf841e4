"""``python -m kubelet.runtime.images``: load/list/rm output in docker's and crictl's formats, and its errors."""

from __future__ import annotations

import pytest

from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.__main__ import DEFAULT_ROOT, human_size, main
from tests.unit.runtime.imagefixtures import build_image, file, layer_tar, write_archive

APP = layer_tar(file("app/run.sh", "#!/bin/sh\necho hi\n", 0o755))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as done:  # --help
        code = done.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "images")


def test_load_docker_and_oci_archives_then_list_and_remove(tmp_path, root, capsys):
    docker = build_image(APP, config={"Cmd": ["/app/run.sh"]})
    oci = build_image(layer_tar(file("data", "x" * 1500)), config={"Cmd": ["cat", "/data"]})
    untagged = build_image(layer_tar(file("u", "u")))
    docker_tar = write_archive(tmp_path / "d.tar", [(docker, ["app:1", "app:latest"])], format="docker")
    oci_tar = write_archive(tmp_path / "o.tar", [(oci, ["localhost:5000/data:v2"]), (untagged, [])])

    code, out, err = run(capsys, "--root", root, "load", str(docker_tar), str(oci_tar))
    assert (code, err) == (0, "")
    assert out.splitlines() == ["Loaded image: docker.io/library/app:1", "Loaded image: docker.io/library/app:latest",
                                "Loaded image: localhost:5000/data:v2", f"Loaded image ID: {untagged.id}"]

    code, out, _ = run(capsys, "--root", root, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert lines[0].index("TAG") == len("docker.io/library/app") + 3  # crictl: widest cell + 3, at least 20
    rows = [line.split() for line in lines[1:]]
    assert rows == [
        ["<none>", "<none>", untagged.id[7:20], "1B"],
        ["docker.io/library/app", "1", docker.id[7:20], "18B"],
        ["docker.io/library/app", "latest", docker.id[7:20], "18B"],
        ["localhost:5000/data", "v2", oci.id[7:20], "1.5kB"],
    ]
    code, out, _ = run(capsys, "--root", root, "ls", "-q")
    assert sorted(out.split()) == sorted([docker.id, oci.id, untagged.id])

    code, out, err = run(capsys, "--root", root, "rm", "app:1", oci.id[7:20])
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"Deleted: {docker.id}", f"Deleted: {oci.id}"]
    assert [i.id for i in ImageStore(root).list()] == [untagged.id]


@pytest.mark.parametrize("argv, message", [
    (["load", "/nonexistent.tar"], "error: image archive /nonexistent.tar does not exist"),
    (["load", "NOTES"], "notes.txt is neither an OCI layout nor a docker-archive tarball"),
    (["rm", "nothing:here"], 'error: image "nothing:here" not found'),
    (["load"], "error: the following arguments are required: FILE"),
    (["frobnicate"], "error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_error_line_and_exit_1(tmp_path, root, capsys, argv, message):
    ImageStore(root).close()
    (tmp_path / "notes.txt").write_text("not a tarball\n")
    argv = [str(tmp_path / "notes.txt") if arg == "NOTES" else arg for arg in argv]
    code, out, err = run(capsys, "--root", root, *argv)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_missing_store_is_an_error_for_list_and_rm(tmp_path, capsys):
    for argv in (["list"], ["rm", "x"]):
        code, _, err = run(capsys, "--root", str(tmp_path / "none"), *argv)
        assert (code, err) == (1, f"error: no image store at {tmp_path / 'none'}\n")
    assert not (tmp_path / "none").exists()


def test_an_image_in_use_is_not_removed(tmp_path, root, capsys):
    built = build_image(APP)
    run(capsys, "--root", root, "load", str(write_archive(tmp_path / "a.tar", [(built, ["app:1"])])))
    store = ImageStore(root)
    store.add_user("app:1", "container c0ffee")  # as the runtime does for a container's image
    code, _, err = run(capsys, "--root", root, "rm", "app:1")
    assert code == 1 and "in use by container c0ffee" in err
    assert store.get("app:1").id == built.id


@pytest.mark.parametrize("argv", [[], ["load"], ["list"], ["rm"]])
def test_help_everywhere(capsys, argv):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0 and out.startswith("usage: python -m kubelet.runtime.images")


def test_defaults_and_sizes():
    assert DEFAULT_ROOT == "/var/lib/kubemini/runtime/images"
    assert [human_size(n) for n in (0, 999, 1000, 1234567, 4_260_000_000)] == ["0B", "999B", "1kB", "1.23MB",
                                                                                 "4.26GB"]
