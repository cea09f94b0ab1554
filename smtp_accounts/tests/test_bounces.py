"""Reading a bounce mailbox on a real Dovecot over TLS: what is read, flagged and left."""

import pytest

from smtp_accounts.bounces import BounceMailboxError, open_bounce_mailbox


def read_all(account):
    with open_bounce_mailbox(account) as mailbox:
        return list(mailbox.unseen_bounces())


def test_every_unseen_bounce_is_read_and_other_mail_is_skipped(imap_server, bounce_account_for):
    for name in ("gmail_no_such_user.eml", "out_of_office.eml", "exchange_recipient_not_found.eml"):
        imap_server.deliver(name)
    account = bounce_account_for(imap_server)

    bounces = read_all(account)

    assert [b.report.original_message_id for b in bounces] == [
        "<4f6c1e0b9d2a@crm.example.com>", "<9b1d7e3a5c2f@crm.example.com>",
    ]
    assert [f.email for b in bounces for f in b.report.permanent] == [
        "no.such.user@example.org", "j.doe@contoso.com",
    ]
    # Reading marks nothing: a bounce whose handling fails is read again next time.
    assert len(imap_server.unseen()) == 3


def test_a_bounce_marked_seen_is_not_read_again_and_nothing_is_deleted(
    imap_server, bounce_account_for
):
    imap_server.deliver("postfix_user_unknown.eml")
    imap_server.deliver("out_of_office.eml")
    account = bounce_account_for(imap_server)

    with open_bounce_mailbox(account) as mailbox:
        for bounce in mailbox.unseen_bounces():
            mailbox.mark_seen(bounce.uid)

    assert read_all(account) == []
    assert imap_server.unseen() == ["Automatic reply: Your invoice for November"]
    assert imap_server.count() == 2


def test_a_refused_login_says_so_without_the_password(imap_server, bounce_account_for):
    account = bounce_account_for(imap_server, bounce_password="wrong-Secret-42")

    with pytest.raises(BounceMailboxError) as caught:
        read_all(account)

    assert f"refused the login for {imap_server.username}" in caught.value.reason
    assert "check the IMAP user and password" in caught.value.reason
    assert "wrong-Secret-42" not in caught.value.reason


def test_an_untrusted_certificate_is_refused(imap_server, bounce_account_for, settings):
    settings.SMTP_ACCOUNTS_CA_FILE = ""  # the system CAs alone do not know the test CA
    account = bounce_account_for(imap_server)

    with pytest.raises(BounceMailboxError) as caught:
        read_all(account)

    assert "The certificate of 127.0.0.1 is not trusted" in caught.value.reason
    assert "SMTP_ACCOUNTS_CA_FILE" in caught.value.reason


def test_a_host_netguard_refuses_is_never_contacted(imap_server, bounce_account_for, settings):
    settings.SMTP_ACCOUNTS_ALLOWED_NETWORKS = []
    account = bounce_account_for(imap_server)

    with pytest.raises(BounceMailboxError) as caught:
        read_all(account)

    assert "127.0.0.1 is a loopback address" in caught.value.reason
    assert imap_server.unseen() == []  # and the mailbox itself was empty anyway


def test_a_server_without_tls_is_a_clear_error(smtp_plain_server, bounce_account_for):
    # An SMTP server speaks in plain text where IMAP over TLS expects a handshake.
    account = bounce_account_for(smtp_plain_server, bounce_port=smtp_plain_server.port)

    with pytest.raises(BounceMailboxError) as caught:
        read_all(account)

    assert "TLS handshake with the bounce mailbox" in caught.value.reason
    assert "port 993" in caught.value.reason


def test_a_closed_port_is_a_clear_error(smtp_test_settings, bounce_account_for):
    account = bounce_account_for(_Closed())

    with pytest.raises(BounceMailboxError) as caught:
        read_all(account)

    assert caught.value.reason == (
        f"The bounce mailbox 127.0.0.1:{_Closed.port} refused the connection; check the IMAP "
        "host and port."
    )


class _Closed:
    host, port, username, password = "127.0.0.1", 9, "bounces@example.com", "x"
