# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000

.PHONY: run test install lint bench

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# Dev-only settings, written once and git-ignored: debug on, fresh keys, loopback allowed
# so accounts can point at the local dev inbox.
.env: | install
	$(BIN)/python -c "import secrets; from cryptography.fernet import Fernet; \
	print('DJANGO_DEBUG=true'); \
	print('DJANGO_SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('FERNET_KEYS=' + Fernet.generate_key().decode()); \
	print('SMTP_ACCOUNTS_ALLOWED_NETWORKS=127.0.0.0/8')" > $@
	@echo "Wrote .env with dev-only keys."

# Serves http://$(ADDR) with the local dev inbox on 127.0.0.1:1025; tasks run in-process.
run: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_superuser
	$(BIN)/python manage.py devserver $(ADDR)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

# Needs Redis on 127.0.0.1:6379 and, for full speed, postfix's smtp-sink. The post_office
# comparison needs a scratch PostgreSQL database (it empties its outbox) and bench-only
# packages (bench/requirements.txt).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/crm_bench
bench: install
	$(BIN)/python bench/list_page.py
	$(BIN)/python bench/send_throughput.py
	$(BIN)/python bench/mailgun_batch.py
	$(BIN)/python bench/to_list.py
	$(BIN)/python bench/routing_limits.py
	$(BIN)/pip install --quiet -r bench/requirements.txt
	DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/post_office_compare.py
