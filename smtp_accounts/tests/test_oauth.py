"""Sign in with Google / Microsoft against the local OAuth server: the flow, state, refresh."""

import threading
from collections import defaultdict
from contextlib import nullcontext
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection

from smtp_accounts import oauth
from smtp_accounts.models import SmtpAccount
from smtp_accounts.senders import ConfigurationError
from smtp_accounts.tests.fixtures.oauth_server import REDIRECT_URI, follow_authorize, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(oauth_server, make_account):
    return make_account(password="", auth_method="google", username="crm-sender@example.com")


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def stored_columns(account):
    """Every text value of the account's row as the database holds it."""
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(SmtpAccount._meta.db_table)
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [account.pk])  # noqa: S608
        return [str(value) for value in cursor.fetchone()]


def test_the_authorization_url_asks_for_a_code_with_pkce_and_offline_access(account):
    session = {}
    url = oauth.start_sign_in(account, session, REDIRECT_URI)

    query = query_of(url)
    assert url.startswith(oauth.provider_for("google").auth_url + "?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "google-client-id"
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["scope"] == "https://mail.google.com/"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert session[oauth.SESSION_KEY][query["state"]]["account"] == account.pk


def test_microsoft_asks_for_smtp_send_and_offline_access(make_account, oauth_server):
    account = make_account(password="", auth_method="microsoft")
    query = query_of(oauth.start_sign_in(account, {}, REDIRECT_URI))
    assert query["client_id"] == "microsoft-client-id"
    assert query["scope"] == "https://outlook.office.com/SMTP.Send offline_access"
    assert "prompt" not in query


def test_a_finished_sign_in_keeps_the_tokens_encrypted(account, oauth_server):
    signed_in = sign_in(account)

    assert signed_in.is_signed_in
    assert signed_in.signed_in_as == "crm-sender@example.com"  # no id_token: the User
    assert oauth_server.exchanges == 1
    columns = " ".join(stored_columns(account))
    assert oauth_server.live_tokens()
    assert not any(token in columns for token in oauth_server.live_tokens())


def test_the_identity_comes_from_the_id_token_when_there_is_one(account, oauth_server):
    oauth_server.id_token_email = "Boss@Example.com"
    assert sign_in(account).signed_in_as == "Boss@Example.com"


def test_a_state_works_once(account, oauth_server):
    session = {}
    params = follow_authorize(oauth.start_sign_in(account, session, REDIRECT_URI))
    oauth.finish_sign_in(session, params, REDIRECT_URI)

    with pytest.raises(oauth.SignInFailed) as refused:
        oauth.finish_sign_in(session, params, REDIRECT_URI)
    assert refused.value.reason == oauth.BAD_STATE
    assert oauth_server.exchanges == 1


@pytest.mark.parametrize("state", [None, "", "forged-state"])
def test_a_missing_or_wrong_state_stores_nothing(account, oauth_server, state):
    session = {}
    params = follow_authorize(oauth.start_sign_in(account, session, REDIRECT_URI))
    params.pop("state")
    if state is not None:
        params["state"] = state

    with pytest.raises(oauth.SignInFailed, match="not valid any more"):
        oauth.finish_sign_in(session, params, REDIRECT_URI)
    assert oauth_server.exchanges == 0
    assert not SmtpAccount.objects.get(pk=account.pk).is_signed_in


def test_a_state_from_another_session_is_refused(account, oauth_server):
    params = follow_authorize(oauth.start_sign_in(account, {}, REDIRECT_URI))
    with pytest.raises(oauth.SignInFailed, match="another browser"):
        oauth.finish_sign_in({}, params, REDIRECT_URI)


def test_a_state_expires(account, oauth_server, settings):
    settings.SMTP_ACCOUNTS_OAUTH_STATE_SECONDS = -1
    session = {}
    params = follow_authorize(oauth.start_sign_in(account, session, REDIRECT_URI))
    with pytest.raises(oauth.SignInFailed, match="older than ten minutes"):
        oauth.finish_sign_in(session, params, REDIRECT_URI)


def test_access_denied_says_what_to_do_and_stores_nothing(account, oauth_server):
    oauth_server.deny()
    session = {}
    params = follow_authorize(oauth.start_sign_in(account, session, REDIRECT_URI))

    with pytest.raises(oauth.SignInFailed) as refused:
        oauth.finish_sign_in(session, params, REDIRECT_URI)
    assert "cancelled at Google" in refused.value.reason
    assert "Click Sign in with Google" in refused.value.reason
    assert not SmtpAccount.objects.get(pk=account.pk).is_signed_in


def test_a_refused_code_exchange_names_the_secret_and_stores_nothing(
    account, oauth_server, settings
):
    session = {}
    params = follow_authorize(oauth.start_sign_in(account, session, REDIRECT_URI))
    settings.SMTP_ACCOUNTS_GOOGLE_CLIENT_SECRET = "wrong"

    with pytest.raises(oauth.SignInFailed) as refused:
        oauth.finish_sign_in(session, params, REDIRECT_URI)
    assert "invalid_client" in refused.value.reason
    assert "SMTP_ACCOUNTS_GOOGLE_CLIENT_SECRET" in refused.value.reason
    assert not SmtpAccount.objects.get(pk=account.pk).is_signed_in


def test_the_token_endpoint_checks_pkce(account, oauth_server):
    session = {}
    params = follow_authorize(oauth.start_sign_in(account, session, REDIRECT_URI))
    session[oauth.SESSION_KEY][params["state"]]["verifier"] = "x" * 64

    with pytest.raises(oauth.SignInFailed, match="did not accept the sign-in"):
        oauth.finish_sign_in(session, params, REDIRECT_URI)
    assert oauth_server.exchanges == 0


def test_an_unconfigured_provider_cannot_start(account, settings):
    settings.SMTP_ACCOUNTS_GOOGLE_CLIENT_ID = ""
    with pytest.raises(oauth.SignInFailed, match="SMTP_ACCOUNTS_GOOGLE_CLIENT_ID"):
        oauth.start_sign_in(account, {}, REDIRECT_URI)
    assert oauth.offered_methods() == ["microsoft"]


def test_a_live_access_token_is_used_without_a_refresh(account, oauth_server):
    account = sign_in(account)
    token = oauth.access_token(account)
    assert oauth.access_token(SmtpAccount.objects.get(pk=account.pk)) == token
    assert oauth_server.refreshes == 0


def test_a_token_near_its_expiry_is_refreshed_and_the_rotated_refresh_token_kept(
    account, oauth_server
):
    oauth_server.token_lifetime = 30  # inside the refresh margin: every use refreshes
    account = sign_in(account)
    first = oauth.access_token(account)
    second = oauth.access_token(SmtpAccount.objects.get(pk=account.pk))

    assert oauth_server.refreshes == 2  # the second refresh needed the first's new token
    assert first != second
    assert oauth_server.check_token("crm-sender@example.com", second) is None


def test_a_revoked_grant_says_sign_in_again_and_drops_the_tokens(account, oauth_server):
    oauth_server.token_lifetime = 30
    account = sign_in(account)
    oauth_server.revoke()

    with pytest.raises(ConfigurationError) as refused:
        oauth.access_token(account)
    assert "invalid_grant" in refused.value.reason
    assert "sign in again" in refused.value.reason
    assert not SmtpAccount.objects.get(pk=account.pk).is_signed_in


def test_an_account_that_is_not_signed_in_says_so(account):
    with pytest.raises(ConfigurationError, match="click Sign in with Google"):
        oauth.access_token(account)


def refresh_in_threads(account_pk, count=2):
    """Call access_token() on `count` threads at once; return their tokens and errors."""
    barrier, results = threading.Barrier(count), []

    def worker():
        try:
            barrier.wait()
            results.append(oauth.access_token(SmtpAccount.objects.get(pk=account_pk)))
        except Exception as err:  # noqa: BLE001 -- the assertion shows it
            results.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_threads_needing_a_refresh_refresh_once(account, oauth_server):
    oauth_server.token_lifetime = 30
    account = sign_in(account)
    oauth_server.token_lifetime = 3600
    oauth_server.slow_refresh = True  # both threads are waiting while the refresh runs

    results = refresh_in_threads(account.pk)

    assert oauth_server.refreshes == 1
    assert len(set(results)) == 1 and isinstance(results[0], str)


@pytest.mark.django_db(transaction=True)
def test_the_database_lock_alone_keeps_processes_to_one_refresh(
    account, oauth_server, monkeypatch
):
    if not connection.features.has_select_for_update:
        pytest.skip("SQLite's test database is in memory: one process, the thread lock")
    # As if each thread were another worker process: only the row lock orders them.
    monkeypatch.setattr(oauth, "_process_locks", defaultdict(nullcontext))
    oauth_server.token_lifetime = 30
    account = sign_in(account)
    oauth_server.token_lifetime = 3600
    oauth_server.slow_refresh = True

    results = refresh_in_threads(account.pk, count=3)

    assert oauth_server.refreshes == 1
    assert len(set(results)) == 1 and isinstance(results[0], str)
