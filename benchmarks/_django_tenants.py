"""django-tenants provisioning tenants on PostgreSQL, driven over stdin by ``tenancy_bench.py``.

Run as ``python benchmarks/_django_tenants.py DATABASE_URL TABLES WORKDIR``. It writes a shared
app (the tenant and domain models) and a tenant app of ``TABLES`` tables (each an id, a name, a
body, a timestamp and an index, so the tenant schema is as large as Plexica's) under
``WORKDIR``, makes their migrations, migrates the public schema, creates the clone template
schema, prints ``ready``, then answers each ``<mode> <n>`` line (``migrate``: ``CREATE SCHEMA``
plus ``migrate_schemas``, django-tenants' default; ``clone``: ``TENANT_CREATION_FAKES_MIGRATIONS``
with ``TENANT_BASE_SCHEMA``, cloning the template and faking the migrations) with a JSON list
of the seconds each ``Client(...).save()`` took. Django is synchronous: it runs in its own
process so the benchmark's event loop is not involved.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_SCHEMA = "djt_base"


def write_apps(workdir: Path, tables: int) -> None:
    shared = workdir / "djt_shared"
    tenant = workdir / "djt_tenant"
    for app in (shared, tenant):
        (app / "migrations").mkdir(parents=True, exist_ok=True)
        (app / "__init__.py").write_text("")
        (app / "migrations" / "__init__.py").write_text("")
    (shared / "models.py").write_text(
        textwrap.dedent(
            """\
            from django.db import models
            from django_tenants.models import DomainMixin, TenantMixin


            class Client(TenantMixin):
                name = models.CharField(max_length=100)
                auto_create_schema = True


            class Domain(DomainMixin):
                pass
            """
        )
    )
    models = ["from django.db import models", ""]
    for index in range(tables):
        models += [
            f"class Table{index}(models.Model):",
            "    id = models.CharField(max_length=36, primary_key=True)",
            "    name = models.CharField(max_length=200, db_index=True)",
            "    body = models.TextField(default='')",
            "    created_at = models.DateTimeField()",
            "",
        ]
    (tenant / "models.py").write_text("\n".join(models))


def configure(database_url: str, workdir: Path) -> None:
    import django  # type: ignore[import-untyped, unused-ignore]  # bench group only, untyped
    from django.conf import settings  # type: ignore[import-untyped, unused-ignore]  # bench group only, untyped

    parts = urlsplit(database_url.replace("+asyncpg", ""))
    sys.path.insert(0, str(workdir))
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django_tenants.postgresql_backend",
                "NAME": parts.path.lstrip("/"),
                "USER": unquote(parts.username or ""),
                "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "127.0.0.1",
                "PORT": parts.port or 5432,
            }
        },
        DATABASE_ROUTERS=["django_tenants.routers.TenantSyncRouter"],
        SHARED_APPS=["django_tenants", "djt_shared", "django.contrib.contenttypes"],
        TENANT_APPS=["djt_tenant"],
        INSTALLED_APPS=["django_tenants", "djt_shared", "django.contrib.contenttypes", "djt_tenant"],
        TENANT_MODEL="djt_shared.Client",
        TENANT_DOMAIN_MODEL="djt_shared.Domain",
        TENANT_BASE_SCHEMA=BASE_SCHEMA,
        TENANT_CREATION_FAKES_MIGRATIONS=False,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


def main(database_url: str, tables: int, workdir: Path) -> None:
    answers, sys.stdout = sys.stdout, sys.stderr  # Django's command output must not mix with the answers
    write_apps(workdir, tables)
    configure(database_url, workdir)
    from django.conf import settings  # type: ignore[import-untyped, unused-ignore]  # bench group only, untyped
    from django.core.management import call_command  # type: ignore[import-untyped, unused-ignore]  # bench group only, untyped
    from djt_shared.models import Client  # type: ignore[import-not-found]  # written by write_apps

    call_command("makemigrations", "djt_shared", "djt_tenant", verbosity=0)
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    Client(schema_name=BASE_SCHEMA, name="template").save(verbosity=0)  # migrated the default way: the clone source
    print("ready", file=answers, flush=True)
    for line in sys.stdin:
        mode, count = line.split()
        settings.TENANT_CREATION_FAKES_MIGRATIONS = mode == "clone"
        timings = []
        for _ in range(int(count)):
            tenant = Client(schema_name=f"djt_{uuid.uuid4().hex[:12]}", name="bench")
            started = time.perf_counter()
            tenant.save(verbosity=0)
            timings.append(time.perf_counter() - started)
        print(json.dumps(timings), file=answers, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
