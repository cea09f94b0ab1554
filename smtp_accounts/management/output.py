"""Plain-text rendering for the `smtp_accounts` command: tables, details, errors, checks.

Nothing here prints a password or a confirmation code: the account's secret is never read.
"""

from django.utils import timezone

from smtp_accounts.services import describe_changes

ACCOUNT_COLUMNS = ("ID", "Name", "Type", "Host", "Email", "State", "Last Update")
HISTORY_COLUMNS = ("When", "Who", "What", "Changes")
# `list` fits a 100-column terminal: the free-text columns (Name, Host, Email) give way,
# cut with an ellipsis; the full values are in `show` and `--json`.
LINE_WIDTH = 100
SHRINKABLE = ("Name", "Host", "Email")
NARROWEST = 8


def table(headers, rows, width=LINE_WIDTH):
    """The lines of a left-aligned text table (header, rule, one line per row), at most
    `width` characters wide when the shrinkable columns can give enough."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    _fit(headers, widths, width - 2 * (len(headers) - 1))
    rows = [[clip(cell, w) for cell, w in zip(row, widths, strict=True)] for row in rows]

    def line(cells):
        padded = (cell.ljust(width) for cell, width in zip(list(cells), widths, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), line("-" * width for width in widths), *(line(row) for row in rows)]


def _fit(headers, widths, budget):
    """Narrow the widest shrinkable column, one character at a time, until `widths` fit."""
    shrinkable = [i for i, h in enumerate(headers) if h in SHRINKABLE]
    while sum(widths) > budget and shrinkable:
        widest = max(shrinkable, key=lambda i: widths[i])
        if widths[widest] <= NARROWEST:
            return
        widths[widest] -= 1


def clip(text, width):
    """`text`, cut to `width` characters with an ellipsis when longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


def when(moment):
    """A timestamp as the admin reads it (local time, minutes), or "-"."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "-"


def yes_no(value):
    return "yes" if value else "no"


def account_row(account):
    """One row of `list`: the web page's columns, with the row's one state."""
    return [
        account.pk,
        account.name,
        account.get_account_type_display(),
        account.server_label,
        account.email,
        account.state.label,
        when(account.updated_at)[:10],  # the day: `show` has the minute
    ]


def account_details(account, latest_test=None):
    """`show`: (label, value) pairs, in the form's words. Never the password itself."""
    pairs = [
        ("ID", account.pk),
        ("Account Name", account.name),
        ("Account Type", account.get_account_type_display()),
        ("Provider", account.get_provider_display()),
        ("Email", account.email),
        ("From Name", account.from_name or "-"),
    ]
    if account.is_external:
        pairs.append(("Domain", account.domain))
    else:
        pairs += [
            ("Host", account.host),
            ("Port", account.port or "-"),
            ("User", account.username or "-"),
            ("Sign-in", account.get_auth_method_display()),
            *sign_in_details(account),
            ("TLS/SSL", account.get_security_display()),
            ("Bounces", bounce_mailbox_summary(account)),  # the mailbox they return to
        ]
    pairs += [
        ("State", account.state.label),
        ("Priority", account.priority),
        ("Limits", limits_summary(account)),
        ("Is Active?", yes_no(account.is_active)),
        ("Verified", when(account.verified_at) if account.is_verified else "no"),
        ("Last Update", when(account.updated_at)),
    ]
    if latest_test is not None:
        pairs.append(("Latest test", f"{when(latest_test.created_at)} {test_summary(latest_test)}"))
    if account.is_paused:
        pairs.append(("Paused until", f"{when(account.paused_until)} ({account.pause_reason})"))
    if account.last_error:
        pairs.append(("Last error", f"{account.last_error} ({when(account.last_error_at)})"))
    return pairs


def sign_in_details(account):
    """The password's or the OAuth sign-in's state, never a secret."""
    if not account.uses_oauth:
        return [("Password", "stored" if account.has_password else "none")]
    if account.is_signed_in:
        return [("Signed in", f"yes, as {account.signed_in_as}")]
    return [("Signed in", "no: Edit > Sign in on its page")]


def bounce_mailbox_summary(account):
    """ "imap.example.com:993 as bounces@example.com; last read … " or "none"."""
    if not account.has_bounce_mailbox:
        return "none"
    text = f"{account.bounce_host}:{account.bounce_port} as {account.bounce_username}"
    if account.bounce_error:
        return f"{text}; last read {when(account.bounce_checked_at)} failed: {account.bounce_error}"
    if account.bounce_checked_at:
        return f"{text}; last read {when(account.bounce_checked_at)}"
    return f"{text}; not read yet"


def history_row(event):
    """One row of `history`: when (to the second), who (and from where), what, and the
    changes in the page's words, a secret only as "changed"."""
    who = f"{event.actor} ({event.actor_ip})" if event.actor_ip else event.actor
    changes = "; ".join(f"{label}: {text}" for label, text in describe_changes(event))
    at = timezone.localtime(event.at).strftime("%Y-%m-%d %H:%M:%S")
    return [at, who, event.get_action_display(), changes or "-"]


def limits_summary(account):
    """`30 a minute, 10000 a day`, or `none`."""
    limits = [(account.max_per_minute, "minute"), (account.max_per_hour, "hour"),
              (account.max_per_day, "day")]
    said = [f"{n} a {unit}" for n, unit in limits if n]
    if account.max_connections:
        said.append(f"{account.max_connections} connections at once")
    return ", ".join(said) or "none"


def details(pairs):
    """`label: value` lines with the values aligned."""
    width = max(len(label) for label, _value in pairs)
    return [f"{label + ':':<{width + 1}} {value}" for label, value in pairs]


def test_summary(test):
    """A test email in one line: to whom, its state and, when it failed, why."""
    text = f"to {test.recipient}: {test.get_status_display().lower()}"
    return f"{text} ({test.error})" if test.error else text


# The options an operator types, for the form fields whose names differ.
OPTION_NAMES = {"account_type": "--type", "username": "--user", "password": "--password-stdin",
                "auth_method": "--sign-in"}


def form_errors(form):
    """A bound form's errors in one line: `--option: message; --option: message` ("account:"
    for form-wide ones), named as the operator typed them, on the line of the error."""
    return "; ".join(
        f"{_option(field)}: {one_line(' '.join(messages))}"
        for field, messages in form.errors.items()
    )


def _option(field):
    if field == "__all__":
        return "account"
    return OPTION_NAMES.get(field, "--" + field.replace("_", "-"))


def one_line(text):
    """`text` with every run of whitespace, line breaks included, as a single space."""
    return " ".join(str(text).split())


def check_step_lines(result):
    """`check ACCOUNT`: one line per step that ran, with its time."""
    width = max((len(step.name) for step in result.steps), default=0)
    return [
        f"{'ok' if step.ok else 'FAIL':<4}  {step.name:<{width}}  {step.seconds * 1000:7.1f} ms"
        f"  {step.detail}"
        for step in result.steps
    ]


def check_summary(account, result):
    """`check --all`: the account in one line, with the failing step's advice when it fails."""
    if result.ok:
        return f"ok    {account.name}: {len(result.steps)} steps passed"
    step = result.failure
    return f"FAIL  {account.name}: {step.name}: {step.detail}"


class ProgressBar:
    """A `progress(done, total)` callback that redraws one line on a terminal `stream` (a
    command's stderr OutputWrapper), ending it when done reaches total."""

    width = 30

    def __init__(self, stream, label):
        self.stream, self.label = stream, label

    def __call__(self, done, total):
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{self.label} [{bar}] {done:,}/{total:,}", style_func=str, ending=end)
        self.stream.flush()
