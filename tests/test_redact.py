"""Masking secrets in log text: every built-in shape, user patterns, bytes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.redact import MASK, Redactor, redactor_for

# (log line, the secret in it) for every shape the tool masks by itself.
SECRET_LINES = [
    ("login failed password=hunter2 for bob", "hunter2"),
    ("db passwd: s3cr3t-pw", "s3cr3t-pw"),
    ("connect pwd=abc123;user=x", "abc123"),
    ("PASSWORD = 'quoted pass'", "quoted pass"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("headers={'Authorization': 'Bearer abc.def-123', 'Host': 'x'}", "abc.def-123"),
    ("proxy-authorization: Digest username=bob, response=9f8e", "9f8e"),
    ("curl -s -H 'X: 1' Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig_", "eyJhbGciOi"),
    ('request {"api_key": "AKIAEXAMPLE123", "user": "bob"}', "AKIAEXAMPLE123"),
    ("GET /v1/items?apikey=XYZ789&page=2", "XYZ789"),
    ("x-api-key: k-0123456789", "k-0123456789"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
    ("access_key=AKIA0000 region=eu", "AKIA0000"),
    ("accessToken=tok.tok.tok", "tok.tok.tok"),
    ("refresh_token: rt-998877", "rt-998877"),
    ("client_secret=shhh-it-is", "shhh-it-is"),
    ("token = 'tok123'", "tok123"),
    ('{"secret":"in json"}', "in json"),
    (r'msg="{\"password\": \"esc4ped\"}"', "esc4ped"),
    ("postgres://admin:pa55word@db.internal:5432/app", "pa55word"),
    ("redis://:r3d1s@cache:6379/0", "r3d1s"),
    ("Set-Cookie: session=0a1b2c3d; Path=/; HttpOnly", "0a1b2c3d"),
    # Command lines, as the cpu and memory checks show the top processes.
    ("1234 mysqld 45% /usr/sbin/mysqld --password hunter2 --user x", "hunter2"),
    ("app --password=hunter2 -v", "hunter2"),
    ("mysql -uroot -pS3cretPw shop", "S3cretPw"),
    ("/usr/bin/mysqldump --single-transaction -h db -p'x y' shop", "x y"),
    ("mariadb-dump -u backup -pm4ria --all-databases", "m4ria"),
    ("curl -s --token tk-881 https://127.0.0.1/", "tk-881"),
    ("sync --api-key AK-77z --verbose", "AK-77z"),
    ("keytool -list -storepass changeit -keystore ks.p12", "changeit"),
    ('gpg --batch --passphrase "two words" -d f.gpg', "two words"),
]


@pytest.mark.parametrize(("line", "secret"), SECRET_LINES)
def test_redactor_masks_every_builtin_secret_shape(line, secret):
    masked, count = Redactor().redact(line)

    assert secret not in masked
    assert MASK in masked
    assert count == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("passphrase: correct horse battery staple", f"passphrase: {MASK}"),
        ("GPG_PASSPHRASE=correct horse, user=bob", f"GPG_PASSPHRASE={MASK}"),
        ("msg='pass phrase: correct horse' id=4", f"msg='pass phrase: {MASK}' id=4"),
        ('{"passphrase": "correct horse"}', f'{{"passphrase": "{MASK}"}}'),
    ],
)
def test_a_passphrase_is_masked_to_the_end_of_the_line_or_the_quote(line, expected):
    assert Redactor().redact(line) == (expected, 1)


@pytest.mark.parametrize(
    "line",
    [
        "tar -pxf backup.tar",
        "ssh -p2222 deploy@127.0.0.1",
        "ls -pla /var/lib/mysql-files",
        "mkdir -pv /srv/mysql",
        "mysql -h db -P 3306 -p",
        "docker login --password-stdin registry.example",
        "vault --token-file /run/vault-token status",
        "app --password-file /etc/app/password --user bob",
    ],
)
def test_p_flags_and_options_naming_where_a_secret_is_are_left_alone(line):
    assert Redactor().redact(line) == (line, 0)


def test_glued_p_is_a_password_only_after_a_mysql_program_on_that_line():
    text = "ls -pfoo\nmysql -uroot -pbar shop\nrsync -pbaz a b"

    masked, count = Redactor().redact(text)

    assert masked == f"ls -pfoo\nmysql -uroot -p{MASK} shop\nrsync -pbaz a b"
    assert count == 1


def test_redactor_keeps_the_key_so_the_line_stays_readable():
    masked, _ = Redactor().redact('user=bob password=hunter2 "api_key": "k1" next')

    assert masked == f'user=bob password={MASK} "api_key": "{MASK}" next'


@pytest.mark.parametrize(
    "line",
    [
        "tests passed: 3, failed: 0",
        "tokenizer=bpe vocabulary=32000",
        "sshd[812]: Failed password for root from 127.0.0.1 port 22 ssh2",
        "the secretary said: hello",
        "GET https://example.org/path?q=1 200",
        "disk /dev/sda1 is 91% full",
    ],
)
def test_redactor_leaves_ordinary_log_lines_alone(line):
    assert Redactor().redact(line) == (line, 0)


def test_redactor_counts_every_secret_on_a_line():
    line = "password=a token=b https://u:c@host/ Bearer ddd"

    masked, count = Redactor().redact(line)

    assert count == 4
    assert all(value not in masked for value in ("=a", "=b", ":c@", "ddd"))


def test_user_pattern_without_a_group_masks_the_whole_match():
    masked, count = Redactor([r"\b\d{3}-\d{2}-\d{4}\b"]).redact("ssn 123-45-6789 ok")

    assert (masked, count) == (f"ssn {MASK} ok", 1)


def test_user_pattern_with_a_group_masks_only_group_one():
    masked, count = Redactor([r"customer=(\w+)"]).redact("order customer=ACME42 ok")

    assert (masked, count) == (f"order customer={MASK} ok", 1)


@pytest.mark.parametrize(
    ("pattern", "line", "expected"),
    [
        # Global inline flags cannot be joined with other patterns.
        (r"(?i)employee-(\d+)", "EMPLOYEE-77 in", f"EMPLOYEE-{MASK} in"),
        # Named groups and back-references change meaning when joined.
        (r"(?P<tag>[a-z]+)=(?P=tag)", "ab=ab cd=ef", f"{MASK}=ab cd=ef"),
        # Group 1 of this pattern is the first letter: only it is masked.
        (r"(\w)\1{3}", "id aaaa b", f"id {MASK}aaa b"),
    ],
)
def test_user_patterns_that_cannot_be_joined_still_mask(pattern, line, expected):
    masked, count = Redactor([pattern]).redact(line)

    assert masked == expected
    assert count == 1


def test_user_pattern_that_matches_nothing_is_not_counted():
    assert Redactor([r"x*"]).redact("abc") == ("abc", 0)


def test_several_user_patterns_and_builtins_share_one_pass():
    redactor = Redactor([r"card (\d{4} \d{4} \d{4} \d{4})", r"ZZ-\d+"])

    masked, count = redactor.redact("card 1234 5678 9012 3456 ZZ-9 password=p token: t")

    assert masked == f"card {MASK} {MASK} password={MASK} token: {MASK}"
    assert count == 4


def test_redact_bytes_keeps_bytes_that_are_not_utf8():
    data = b"caf\xe9 latin-1 line\npassword=x\xff\xfe\n\x00binary\n"

    masked, count = Redactor().redact_bytes(data)

    assert masked == b"caf\xe9 latin-1 line\npassword=[masked]\n\x00binary\n"
    assert count == 1


def test_redact_bytes_finds_secrets_on_both_sides_of_the_chunk_seams():
    # 3MiB of lines with a secret every 1000 lines: crosses the 1MiB chunks.
    lines = []
    for number in range(40_000):
        if number % 1000 == 0:
            lines.append(f"line {number} token=t{number}")
        else:
            lines.append(f"line {number} GET /index.html 200 0.0{number}")
    data = ("\r\n".join(lines) + "\r\n").encode()
    data += data

    masked, count = Redactor().redact_bytes(data)

    assert count == 80
    assert b"token=t" not in masked
    assert masked.replace(MASK.encode(), b"").count(b"\r\n") == data.count(b"\r\n")
    unmasked = re.sub(rb"token=\[masked\]", b"token=t", masked)
    assert re.sub(rb"token=t\d+", b"token=t", data) == unmasked


def test_redact_bytes_applies_user_patterns_on_lines_without_builtin_words():
    data = b"plain line with ACCT-1234\nanother ACCT-5678 line\n" * 3

    masked, count = Redactor([r"ACCT-\d+"]).redact_bytes(data)

    assert count == 6
    assert b"ACCT-" not in masked


def test_redactor_for_reuses_one_redactor_per_pattern_set():
    assert redactor_for((r"a(\d)",)) is redactor_for((r"a(\d)",))
    assert redactor_for(()) is not redactor_for((r"a(\d)",))


def test_redact_distinct_gives_one_fingerprint_per_different_value():
    redactor = Redactor()
    text = "password=hunter2 again password=hunter2 token=other"

    masked, fingerprints = redactor.redact_distinct(text)
    _, in_bytes = redactor.redact_bytes_distinct(text.encode())

    assert masked.count(MASK) == 3
    assert len(fingerprints) == 2
    assert in_bytes == fingerprints
    assert redactor.redact_distinct("password=hunter2")[1] < fingerprints
    assert not any("hunter2" in item or "other" in item for item in fingerprints)


# Pieces log lines are made of, secrets and near-misses among them.
LOG_PIECES = st.sampled_from(
    [
        "password",
        "passphrase",
        "token",
        "api_key",
        "--password",
        "--token",
        "-p",
        "mysql",
        "mariadb",
        "Authorization",
        "Bearer",
        "https://u:",
        "@host",
        "=",
        ": ",
        " ",
        " ",
        '"',
        "'",
        '\\"',
        ",",
        "\n",
        MASK,
        "[masked",
        "hunter2",
        "two words",
    ]
)


@given(st.lists(LOG_PIECES | st.text(max_size=6), max_size=30).map("".join))
@settings(max_examples=400, deadline=None)
def test_masking_twice_changes_nothing(text):
    redactor = Redactor([r"ACCT-(\d+)"])
    once, _ = redactor.redact(text)

    assert redactor.redact(once) == (once, 0)


SECRET_VALUES = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd")),
    min_size=6,
    max_size=20,
).map(lambda value: f"Zq{value}")


@given(
    secret=SECRET_VALUES,
    template=st.sampled_from(
        [
            "{program} --password {secret} --user app",
            "{program} --password={secret} --user app",
            "{program} -h db -u root -p{secret} shop",
            "{program} --api-key {secret}",
            "{program} --token {secret} -v",
            "{program} --passphrase '{secret} and more words'",
            "passphrase: {secret} and more words",
        ]
    ),
    program=st.sampled_from(["mysql", "/usr/bin/mysqldump", "mariadb", "mysqladmin"]),
)
@settings(max_examples=200, deadline=None)
def test_command_line_secrets_never_survive(secret, template, program):
    line = "4242 45.0% " + template.format(program=program, secret=secret)

    masked, count = Redactor().redact(line)

    assert secret not in masked
    assert "more words" not in masked
    assert count == 1
