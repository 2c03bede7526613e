"""The `face-service` command: `serve` starts the HTTP API, `embed` prints faces and embeddings as JSON,
`keys new` makes a scoped API key."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import cli_collections
from app.image_files import image_files
from app.logging_setup import configure_logging
from app.settings import Settings, SettingsError
from domain.errors import FaceServiceError

if TYPE_CHECKING:
    from app.bootstrap import Container

logger = logging.getLogger("face_service")


def load(settings: Settings) -> Container:
    """The composition root for these settings, with the models loaded (sessions open)."""
    from app.bootstrap import bootstrap

    container = bootstrap(settings)
    container.service()
    return container


def serve(settings: Settings, host: str | None, port: int | None) -> int:
    # In worker processes (the default) this process loads no model: the workers do, at start-up.
    # In threads, the models load on a second thread while this one imports the web stack: session
    # creation and extension loading release the GIL, which takes a few hundred ms off start-up.
    from app.bootstrap import bootstrap

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader") as loader:
        loading = loader.submit(load if settings.inference_isolation == "thread" else bootstrap, settings)
        import uvicorn

        import adapters.http.app  # noqa: F401 - the web stack, imported while the models load

        container = loading.result()
    if settings.api_key_generated:
        # Printed once, to the console only: there is no other way to learn it.
        print(
            f"No API_KEY set: generated one for this run: {settings.api_keys[0]}\n"
            "Set API_KEY (or API_KEYS) to keep a key across restarts.",
            file=sys.stderr,
            flush=True,
        )
    app = container.http_app()
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        http=container.server_protocol(),  # header deadline, connection cap, JSON answers
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level=settings.log_level.lower(),
        log_config=None,  # configure_logging already set the format
        access_log=False,  # each request is logged once, with its id, by the HTTP adapter
        timeout_graceful_shutdown=30,
    )
    return 0


def embed(settings: Settings, paths: list[Path], all_faces: bool, output: Path | None) -> int:
    import msgspec
    from tqdm import tqdm

    from adapters.wire import presenters
    from adapters.wire.schemas import FileError

    service = load(settings).service()
    files = image_files(paths)
    status = 0
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        # The bar goes to stderr, and only on a terminal: the JSON lines stay clean for pipes.
        for path in tqdm(files, unit="image", disable=None, file=sys.stderr, leave=False):
            record: msgspec.Struct
            try:
                record = presenters.file_extraction(str(path), service.extract(path.read_bytes(), all_faces))
            except FaceServiceError as error:
                status = 1
                record = FileError(file=str(path), error=error.message, code=error.code)
            except OSError as error:
                status = 1
                record = FileError(file=str(path), error=str(error), code="unreadable_file")
            sink.write(msgspec.json.encode(record).decode() + "\n")
            sink.flush()
    finally:
        if output:
            sink.close()
    return status


def compare(settings: Settings, first: Path, second: Path) -> int:
    """The similarity of the largest face in each of two images, and the match decision."""
    import msgspec

    from adapters.wire import presenters
    from adapters.wire.presenters import NO_FACE
    from adapters.wire.schemas import FileError

    service = load(settings).service()
    embeddings = []
    for path in (first, second):
        extraction = service.extract(path.read_bytes())
        if not extraction.faces:
            print(msgspec.json.encode(FileError(file=str(path), error=NO_FACE, code="no_face")).decode())
            return 1
        embeddings.append(extraction.faces[0])
    probe, candidate = embeddings
    comparison = service.compare(
        probe.embedding.tolist(), [candidate.embedding.tolist()], probe.model.id, candidate.model.id, one_to_one=True
    )
    print(msgspec.json.encode(presenters.comparison(comparison, one_to_one=True)).decode())
    return 0


def prepare(settings: Settings) -> int:
    """Load the models, fill the model cache, run one inference, and say what is in use."""
    container = load(settings)
    container.service().warm_up()
    info = container.info()
    print(
        json.dumps(
            {
                "backend": info.backend,
                "model_id": info.model_id,
                "embedding_size": info.embedding_size,
                "execution_providers": info.execution_providers,
            }
        )
    )
    return 0


def add_key_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="make a scoped API key, or list the keys the service accepts")
    verbs = keys.add_subparsers(dest="verb", required=True)
    new = verbs.add_parser(
        "new",
        help="a new key: its keys-file entry (the hash only) on stdout, the key itself once on stderr",
        description="Prints the API_KEYS_FILE entry (which holds only the key's SHA-256) on stdout, so "
        "`face-service keys new ... >> keys.toml` stores no secret, and the key itself, once, on stderr.",
    )
    new.add_argument("--name", required=True, help="the key's name in logs and metrics (never the key)")
    new.add_argument(
        "--collections",
        type=comma_list,
        default=[],
        help="comma-separated: collection names, prefixes ending in * (acme-*), or * for all",
    )
    new.add_argument(
        "--verbs",
        type=comma_list,
        default=[],
        help="comma-separated, of: faces, search, enroll, manage (none: a key for /metrics and /health only)",
    )
    new.add_argument("--json", action="store_true", help="the entry as JSON (for a .json keys file)")
    verbs.add_parser("list", help="the accepted keys' names and scopes, as JSON lines (never a key or its hash)")


def comma_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def new_key(name: str, collections: list[str], verbs: list[str], as_json: bool) -> int:
    from app.keys import new_key as make

    try:
        secret, entry = make(name, collections, verbs, as_json)
    except ValueError as error:
        print(f"face-service: {error}", file=sys.stderr)
        return 2
    print(entry, flush=True)
    print(
        f"API key {name!r} (shown once; the file keeps only its hash; give it to the caller):\n{secret}",
        file=sys.stderr,
        flush=True,
    )
    return 0


def list_keys(settings: Settings) -> int:
    for key in settings.keyring().keys:
        scope = key.scope
        verbs = sorted(verb.value for verb in scope.verbs)
        print(json.dumps({"name": key.name, "collections": list(scope.collections), "verbs": verbs}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="face-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="start the HTTP API (settings from the environment)")
    serve_cmd.add_argument("--host", help="interface to listen on (default: HOST or 0.0.0.0)")
    serve_cmd.add_argument("--port", type=int, help="port to listen on (default: PORT or 8000)")
    embed_cmd = commands.add_parser(
        "embed", help="the faces and embeddings of images (files or folders), as JSON lines"
    )
    embed_cmd.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER", help="image files, or folders to search for images"
    )
    embed_cmd.add_argument("--all-faces", action="store_true", help="every face, not only the largest")
    embed_cmd.add_argument("-o", "--output", type=Path, help="write the JSON lines to this file (default: stdout)")
    compare_cmd = commands.add_parser("compare", help="similarity of the largest faces of two images, and the match")
    compare_cmd.add_argument("first", type=Path, metavar="A", help="the first image")
    compare_cmd.add_argument("second", type=Path, metavar="B", help="the second image")
    commands.add_parser("prepare", help="load and check the models, fill the model cache (MODEL_CACHE_DIR), then exit")
    commands.add_parser("openapi", help="print the OpenAPI document (the typed contract clients are generated from)")
    cli_collections.add_commands(commands)
    add_key_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "openapi":
        from app.bootstrap import openapi_document

        print(json.dumps(openapi_document(), indent=2, sort_keys=True))
        return 0
    if args.command == "keys" and args.verb == "new":  # needs no settings: it only makes a key
        return new_key(args.name, args.collections, args.verbs, args.json)
    url = getattr(args, "url", None) or os.environ.get(cli_collections.URL_VARIABLE)
    if args.command in cli_collections.COMMANDS and url:
        from app import cli_remote

        try:  # a running service does the work: no settings, models or store here
            return cli_remote.run(args, url, cli_remote.api_key(dict(os.environ)))
        except FaceServiceError as error:
            print(f"face-service: {error.message}", file=sys.stderr)
            return 3
        except OSError as error:
            print(f"face-service: {error.filename}: {error.strerror}", file=sys.stderr)
            return 2

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"face-service: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.debug)
    try:
        if args.command == "serve":
            return serve(settings, args.host, args.port)
        if args.command == "prepare":
            return prepare(settings)
        if args.command == "compare":
            return compare(settings, args.first, args.second)
        if args.command == "keys":
            return list_keys(settings)
        if args.command in cli_collections.COMMANDS:
            return cli_collections.run(settings, args)
        return embed(settings, args.images, args.all_faces, args.output)
    except FaceServiceError as error:  # start-up failures, or an image `compare` cannot use
        print(f"face-service: {error.message}", file=sys.stderr)
        return 3
    except OSError as error:
        print(f"face-service: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
