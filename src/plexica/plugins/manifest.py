"""Manifest validation and dependency ordering: pure functions, no IO."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jsonschema
import jsonschema.exceptions
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from plexica_sdk.errors import PluginLoadError
from plexica_sdk.types import PERMISSION_KEY_RE, PLUGIN_NAME_RE, PluginManifest, RouteRateLimit

__all__ = ["load_order", "validate_manifest"]

#: Semantic Versioning 2.0.0 (https://semver.org), the form plugin versions must take.
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)


def validate_manifest(manifest: object, *, origin: str) -> PluginManifest:
    """Check one manifest on its own; ``origin`` names the plugin when the manifest can't.

    Raises:
        PluginLoadError: naming the plugin and the first problem found.
    """
    if not isinstance(manifest, PluginManifest):
        raise PluginLoadError(origin, f"plexica_manifest() returned {type(manifest).__name__}, not PluginManifest")
    name = manifest.name
    if not PLUGIN_NAME_RE.match(name):
        raise PluginLoadError(origin, f"name {name!r} must match {PLUGIN_NAME_RE.pattern}")
    if not SEMVER_RE.match(manifest.version):
        raise PluginLoadError(name, f"version {manifest.version!r} is not a semantic version (e.g. 1.2.0)")
    try:
        Version(manifest.version)  # ``requires`` ranges are PEP 440: the version must compare too
    except InvalidVersion:
        raise PluginLoadError(name, f"version {manifest.version!r} cannot be compared with version ranges") from None
    for permission in manifest.permissions:
        if not PERMISSION_KEY_RE.match(permission.key) or "*" in permission.key:
            raise PluginLoadError(name, f"permission {permission.key!r} must look like '{name}:resource:action'")
        if permission.plugin != name:
            raise PluginLoadError(name, f"permission {permission.key!r} must start with '{name}:'")
    for event_type in manifest.event_types:
        if not event_type.type.startswith(f"{name}.") or event_type.type.count(".") < 2:
            raise PluginLoadError(name, f"event type {event_type.type!r} must look like '{name}.entity.verb'")
    for dependency, spec in manifest.requires.items():
        if not PLUGIN_NAME_RE.match(dependency):
            raise PluginLoadError(name, f"requires unknown-looking plugin name {dependency!r}")
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise PluginLoadError(name, f"requires {dependency} {spec!r}: not a version range") from None
    if manifest.config_schema is not None:
        _check_config_schema(name, manifest.config_schema)
    _check_rate_limits(name, manifest.rate_limits)
    limit = manifest.max_body_bytes
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PluginLoadError(name, f"max_body_bytes must be a whole number of bytes >= 1 or None, got {limit!r}")
    return manifest


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _check_rate_limits(name: str, rules: Sequence[object]) -> None:
    """Each ``rate_limits`` rule must be a ``RouteRateLimit`` with a ``/`` path, known methods and a cost >= 1."""
    for rule in rules:
        if not isinstance(rule, RouteRateLimit):
            raise PluginLoadError(name, f"rate_limits holds {type(rule).__name__}, not RouteRateLimit")
        if not rule.path.startswith("/"):
            raise PluginLoadError(name, f"rate limit path {rule.path!r} must start with '/' (under the plugin's mount)")
        unknown = sorted(set(rule.methods) - _HTTP_METHODS)
        if unknown:
            raise PluginLoadError(name, f"rate limit {rule.path!r}: unknown HTTP methods {unknown}")
        if isinstance(rule.cost, bool) or not isinstance(rule.cost, int) or rule.cost < 1:
            raise PluginLoadError(name, f"rate limit {rule.path!r}: cost must be an integer >= 1, got {rule.cost!r}")


def _check_config_schema(name: str, schema: Mapping[str, object]) -> None:
    """A ``config_schema`` must be a draft 2020-12 object schema whose defaults pass it.

    Caught here, a bad schema fails the host's start naming the plugin, instead of every
    tenant admin's first edit.
    """
    if not isinstance(schema, Mapping):
        raise PluginLoadError(name, f"config_schema must be a JSON Schema object, not {type(schema).__name__}")
    document = dict(schema)
    try:
        jsonschema.Draft202012Validator.check_schema(document)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise PluginLoadError(name, f"config_schema is not a valid JSON Schema at {where}: {exc.message}") from None
    if document.get("type", "object") != "object":
        raise PluginLoadError(name, 'config_schema must describe an object ("type": "object")')
    properties = document.get("properties")
    items = properties.items() if isinstance(properties, Mapping) else ()
    defaults = {key: sub["default"] for key, sub in items if isinstance(sub, Mapping) and "default" in sub}
    for error in jsonschema.Draft202012Validator(document).iter_errors(defaults):
        if error.absolute_path:  # a default breaks its own property's schema (missing required ones are fine)
            where = ".".join(str(part) for part in error.absolute_path)
            raise PluginLoadError(name, f"config_schema default of {where!r} is invalid: {error.message}")


def load_order(manifests: Sequence[PluginManifest], *, builtin: Sequence[str] = ()) -> list[str]:
    """Return plugin names with every plugin after the plugins it requires.

    Built-in plugins come first. Ties keep the discovery order, so the order is stable.

    Raises:
        PluginLoadError: a duplicate name, a missing dependency, a version outside the required
            range, or a dependency cycle, naming the plugin at fault.
    """
    by_name: dict[str, PluginManifest] = {}
    for manifest in manifests:
        if manifest.name in by_name:
            raise PluginLoadError(manifest.name, "another plugin with the same name is already loaded")
        by_name[manifest.name] = manifest
    for manifest in manifests:
        _check_requirements(manifest, by_name)

    order: list[str] = [name for name in builtin if name in by_name]
    state: dict[str, str] = {name: "done" for name in order}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise PluginLoadError(name, f"dependency cycle: {cycle}")
        state[name] = "visiting"
        for dependency in by_name[name].requires:
            visit(dependency, [*path, name])
        state[name] = "done"
        order.append(name)

    for manifest in manifests:
        visit(manifest.name, [])
    return order


def _check_requirements(manifest: PluginManifest, by_name: Mapping[str, PluginManifest]) -> None:
    for dependency, spec in manifest.requires.items():
        found = by_name.get(dependency)
        if found is None:
            raise PluginLoadError(manifest.name, f"requires plugin {dependency!r}, which is not installed")
        try:
            version = Version(found.version)
        except InvalidVersion:  # pragma: no cover - semver is validated before
            raise PluginLoadError(dependency, f"version {found.version!r} is not comparable") from None
        if not SpecifierSet(spec).contains(version, prereleases=True):
            raise PluginLoadError(
                manifest.name, f"requires {dependency} {spec}, but version {found.version} is installed"
            )
