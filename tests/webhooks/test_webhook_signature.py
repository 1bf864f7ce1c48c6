"""verify_signature against the real vectors of API-NOTES §10.3, and their tampered copies."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from signalwire_calls import ConfigError
from signalwire_calls.webhooks import verify_signature

from conftest import sample

#: The real signed status callbacks of API-NOTES §10.3 (V1, V2), shared by the webhook tests.
VECTORS = sample("status_callbacks_real.json")
SW_KEY = VECTORS["signing_key"]
V1_URL = VECTORS["V1"]["url"]
V1_PARAMS = VECTORS["V1"]["params"]
V1_SIG = VECTORS["V1"]["signature"]
V2_URL = VECTORS["V2"]["url"]
V2_PARAMS = VECTORS["V2"]["params"]
V2_SIG = VECTORS["V2"]["signature"]

TW_KEY = "12345"
P_TW = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
U_TW = "https://mycompany.com/myapp.php?foo=1&bar=2"
HTTP_TW = "http://mycompany.com/myapp.php?foo=1&bar=2"
V7_PAIRS = [
    ("Sid", "CA123"),
    ("SidAccount", "AC123"),
    ("Digits", "5678"),
    ("Digits", "1234"),
    ("Digits", "1234"),
]
V8_BODY = '{"property": "value", "boolean": true}'
V8_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
V11_BODY = (
    '{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":'
    '"fa3570ae-f8bd-42c2-83f4-9950d906c91b@us-west","segment_id":'
    '"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_state":"created","direction":"inbound",'
    '"type":"phone","from":"+12135877632","to":"+12089806814","from_number":"+12135877632",'
    '"to_number":"+12089806814","project_id":"4b7ae78a-d02e-4889-a63b-08b156d5916e",'
    '"space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}'
)
V12_BODY = '{"event":"call.state","params":{"call_id":"abc-123","state":"answered"}}'

#: Form-encoded vectors: (id, key, url, params, signature).
FORM_VECTORS = [
    ("V1", SW_KEY, V1_URL, V1_PARAMS, V1_SIG),
    ("V2", SW_KEY, V2_URL, V2_PARAMS, V2_SIG),
    ("V3", TW_KEY, U_TW, P_TW, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("V3a", TW_KEY, U_TW, P_TW, "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ("V3b", TW_KEY, HTTP_TW, P_TW, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    (
        "V3c",
        TW_KEY,
        "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
        P_TW,
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
    ),
    (
        "V3d",
        TW_KEY,
        "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
        P_TW,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    ),
    ("V4", TW_KEY, U_TW + "&Body=It's+amazing", P_TW, "dsq4Ehbj6cs+KdTkpF5sSSplOWw="),
    (
        "V5",
        TW_KEY,
        "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
        P_TW,
        "CukzLTc1tT5dXEDIHm/tKBanW10=",
    ),
    (
        "V5-443",
        TW_KEY,
        "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
        P_TW,
        "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
    ),
    (
        "V5-user",
        TW_KEY,
        "https://user@mycompany.com/myapp.php?foo=1&bar=2",
        P_TW,
        "2YRLlVAflCqxaNicjMpJcSTgzSs=",
    ),
    (
        "V6",
        TW_KEY,
        U_TW,
        {"MessagingBinding.Address": ["+1325xxxxxxx", "+1415xxxxxxx"]},
        "83O6e2vORAoJHUNzJjDWN1jz+BA=",
    ),
    ("V7-dedup", TW_KEY, U_TW, V7_PAIRS, "IK+Dwps556ElfBT0I3Rgjkr1wJU="),
    ("V7-order", TW_KEY, U_TW, V7_PAIRS, "eMV0TTCyejiqoUSkV7IwWuk0CRc="),
    ("V10", "qwerty", "https://example.com/test", {"foo": "bar"}, "TR9Skm9jiF4WVRJznU5glK5I83k="),
]

#: Raw-body vectors: (id, key, url, body, signature).
BODY_VECTORS = [
    ("V8", TW_KEY, f"{U_TW}&bodySHA256={V8_HASH}", V8_BODY, "a9nBmqA0ju/hNViExpshrM61xv4="),
    (
        "V8a",
        TW_KEY,
        f"{U_TW}&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "{}",
        "Ldidvp12m26NI7eqEvxnEpkd9Hc=",
    ),
    (
        "V8b",
        TW_KEY,
        f"https://mycompany.com/myapp.php?bodySHA256={V8_HASH}",
        V8_BODY,
        "y77kIzt2vzLz71DgmJGsen2scGs=",
    ),
    (
        "V9",
        "PSKtest1234567890abcdef",
        "https://example.ngrok.io/webhook?bodySHA256=69f3cbfc18e386ef8236cb7008cd5a54b7fed637a8cb3373b5a1591d7f0fd5f4",
        '{"event":"call.state"}',
        "dfO9ek8mxyFtn2nMz24plPmPfIY=",
    ),
    (
        "V10a",
        "qwerty",
        "https://example.com/test?bodySHA256=8d90d640c6ba47d595ac56203d7f5c6b511be80fdf44a2055acca75a119b9fd2",
        '{"message": "a post body"}',
        "zR5Oq4f6cijN5oz5bisiVuxYnTU=",
    ),
    (
        "V11",
        "PSK_7TruNcSNTxp4zNrykMj4EPzF",
        "https://81f2-2-45-18-191.ngrok-free.app/",
        V11_BODY,
        "b18500437ebb010220ddd770cbe6fd531ea0ba0d",
    ),
    (
        "V12",
        "PSKtest1234567890abcdef",
        "https://example.ngrok.io/webhook",
        V12_BODY,
        "c3c08c1fefaf9ee198a100d5906765a6f394bf0f",
    ),
]


def scheme_b(key: str, text: str) -> str:
    """Compute a Scheme B signature the way API-NOTES §10.2 describes it."""
    return base64.b64encode(hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()).decode()


def tamper(text: str, index: int = -1) -> str:
    """Change one character of a string (to another printable ASCII one)."""
    position = index % len(text)
    char = text[position]
    return text[:position] + ("B" if char == "A" else "A") + text[position + 1 :]


def tampered_params(params):
    """Change one character of the first value, whatever shape the params have."""
    if isinstance(params, dict):
        name, value = next(iter(params.items()))
        changed = [tamper(v) for v in value] if isinstance(value, list) else tamper(value)
        return {**params, name: changed}
    (name, value), *rest = params
    return [(name, tamper(value)), *rest]


@pytest.mark.parametrize(
    ("key", "url", "params", "signature"),
    [v[1:] for v in FORM_VECTORS],
    ids=[v[0] for v in FORM_VECTORS],
)
def test_form_vectors_verify(key, url, params, signature):
    """Every real form-encoded vector verifies."""
    assert True is verify_signature(signing_key=key, url=url, signature=signature, params=params)


@pytest.mark.parametrize(
    ("key", "url", "body", "signature"),
    [v[1:] for v in BODY_VECTORS],
    ids=[v[0] for v in BODY_VECTORS],
)
def test_body_vectors_verify(key, url, body, signature):
    """Every real raw-body vector verifies, given as str and as bytes."""
    assert True is verify_signature(signing_key=key, url=url, signature=signature, body=body)
    assert True is verify_signature(
        signing_key=key, url=url, signature=signature, body=body.encode()
    )


@pytest.mark.parametrize(
    ("key", "url", "params", "signature"),
    [v[1:] for v in FORM_VECTORS],
    ids=[v[0] for v in FORM_VECTORS],
)
@pytest.mark.parametrize("index", [8, -1])
def test_form_vectors_refuse_a_changed_url(key, url, params, signature, index):
    """Changing one character of the URL (in the host, or at its end) breaks the signature."""
    assert False is verify_signature(
        signing_key=key, url=tamper(url, index), signature=signature, params=params
    )


@pytest.mark.parametrize(
    ("key", "url", "params", "signature"),
    [v[1:] for v in FORM_VECTORS],
    ids=[v[0] for v in FORM_VECTORS],
)
def test_form_vectors_refuse_a_changed_value(key, url, params, signature):
    """Changing one character of a parameter value breaks the signature."""
    assert False is verify_signature(
        signing_key=key, url=url, signature=signature, params=tampered_params(params)
    )


@pytest.mark.parametrize(
    ("key", "url", "params", "signature"),
    [v[1:] for v in FORM_VECTORS],
    ids=[v[0] for v in FORM_VECTORS],
)
def test_form_vectors_refuse_another_key(key, url, params, signature):
    """Changing one character of the key breaks the signature."""
    assert False is verify_signature(
        signing_key=tamper(key), url=url, signature=signature, params=params
    )


@pytest.mark.parametrize(
    ("key", "url", "body", "signature"),
    [v[1:] for v in BODY_VECTORS],
    ids=[v[0] for v in BODY_VECTORS],
)
def test_body_vectors_refuse_tampering(key, url, body, signature):
    """Changing one character of the URL, the body or the key breaks a raw-body signature."""
    assert False is verify_signature(
        signing_key=key, url=tamper(url, 9), signature=signature, body=body
    )
    assert False is verify_signature(
        signing_key=key, url=url, signature=signature, body=tamper(body, -2)
    )
    assert False is verify_signature(
        signing_key=tamper(key), url=url, signature=signature, body=body
    )


def test_body_hash_mismatch_is_refused_even_with_a_valid_url_signature():
    """V10b: the header matches the URL's HMAC, but the body is not the one the URL hashes."""
    url = "https://example.com/test?bodySHA256=79bfb0acaf0045fd30f13d48d4fe296b393d85a3bfbee881a0172b2bd574b11e"
    signature = "+LYlbGr/VmN84YPJQCuWs+9UA7E="
    assert signature == scheme_b("qwerty", url)  # the vector's premise, from the notes' scheme
    body = '{"message": "a post body that does not match the bodySHA256"}'
    assert False is verify_signature(signing_key="qwerty", url=url, signature=signature, body=body)


def test_a_url_only_signature_never_vouches_for_a_body():
    """A signature over the bare URL (no bodySHA256) does not verify a request with a body."""
    signature = scheme_b("qwerty", "https://example.com/test")
    assert True is verify_signature(
        signing_key="qwerty", url="https://example.com/test", signature=signature
    )
    assert False is verify_signature(
        signing_key="qwerty", url="https://example.com/test", signature=signature, body="{}"
    )


def test_form_fields_are_not_accepted_as_a_body():
    """A form vector's signature does not verify when its fields are sent as a raw body."""
    body = "&".join(f"{name}={value}" for name, value in P_TW.items())
    assert False is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature="RSOYDt4T1cUTdK1PDd93/VVr8B8=", body=body
    )


def test_key_rotation_accepts_the_old_and_the_new_key():
    """A list of keys verifies a request signed with any one of them, in any position."""
    for keys in (
        [SW_KEY, "PSK_new0000000000000000000"],
        ["PSK_new0000000000000000000", SW_KEY],
        (k for k in [SW_KEY]),
    ):
        assert True is verify_signature(
            signing_key=keys, url=V1_URL, signature=V1_SIG, params=V1_PARAMS
        )
    assert False is verify_signature(
        signing_key=["PSK_a", "PSK_b"], url=V1_URL, signature=V1_SIG, params=V1_PARAMS
    )


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_signature_is_refused(signature):
    """No signature header, or an empty one, is refused without raising."""
    assert False is verify_signature(
        signing_key=SW_KEY, url=V1_URL, signature=signature, params=V1_PARAMS
    )


@pytest.mark.parametrize(
    "signature", ["lf3nWPmUr2y6jSeeoMW4mg58vg=", "é" * 28, "x", V1_SIG + " ", V1_SIG.lower()]
)
def test_malformed_signature_is_refused(signature):
    """A truncated, non-ASCII, short, padded or re-cased signature is refused without raising."""
    assert False is verify_signature(
        signing_key=SW_KEY, url=V1_URL, signature=signature, params=V1_PARAMS
    )


def test_pairs_mapping_and_list_values_are_equivalent():
    """V6 verifies whether its repeated name is given as a list value or as pairs."""
    pairs = [
        ("MessagingBinding.Address", "+1325xxxxxxx"),
        ("MessagingBinding.Address", "+1415xxxxxxx"),
    ]
    assert True is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature="83O6e2vORAoJHUNzJjDWN1jz+BA=", params=pairs
    )


def test_repeated_values_keep_their_submission_order():
    """Values signed in an unsorted submission order do not verify once swapped."""
    signature = scheme_b(TW_KEY, U_TW + "ToshopToboss")
    assert True is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params=[("To", "shop"), ("To", "boss")]
    )
    assert False is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params=[("To", "boss"), ("To", "shop")]
    )


def test_sorted_deduplicated_variant_does_not_bind_order_or_count():
    """The twilio-python 7.x variant accepts repeats in any order and count (the documented cost)."""
    signature = scheme_b(TW_KEY, U_TW + "TobossToshop")
    for pairs in (
        [("To", "shop"), ("To", "boss")],
        [("To", "boss"), ("To", "shop"), ("To", "shop")],
    ):
        assert True is verify_signature(
            signing_key=TW_KEY, url=U_TW, signature=signature, params=pairs
        )
    assert False is verify_signature(
        signing_key=TW_KEY,
        url=U_TW,
        signature=signature,
        params=[("To", "boss"), ("To", "shop"), ("To", "shoq")],
    )


def test_first_value_only_signature_is_not_accepted():
    """Twilio 6.54's rule (only a repeated name's first value signed) leaves values unsigned: refused."""
    signature = scheme_b(TW_KEY, U_TW + "DigitsfiveSidCA123")
    pairs = [("Sid", "CA123"), ("Digits", "five"), ("Digits", "six")]
    assert True is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params=pairs[:2]
    )
    assert False is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params=pairs
    )


def test_empty_values_contribute_their_name():
    """An empty value adds just its name to the signed string (API-NOTES §10.2)."""
    signature = scheme_b(TW_KEY, U_TW + "ForwardedFromTo+1")
    assert True is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params={"To": "+1", "ForwardedFrom": ""}
    )
    assert False is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params={"To": "+1"}
    )


def test_get_callback_signs_the_url_only():
    """With neither params nor body, the signed string is the URL alone (a GET callback)."""
    url = "https://example.com/status?CallSid=abc&CallStatus=ringing"
    assert True is verify_signature(signing_key=TW_KEY, url=url, signature=scheme_b(TW_KEY, url))
    assert True is verify_signature(
        signing_key=TW_KEY, url=url, signature=scheme_b(TW_KEY, url), params={}
    )
    assert False is verify_signature(
        signing_key=TW_KEY, url=url.replace("ringing", "busy"), signature=scheme_b(TW_KEY, url)
    )


@pytest.mark.parametrize(
    ("signed", "configured"),
    [
        ("https://example.com:443/cb", "https://example.com/cb"),
        ("https://example.com/cb", "https://example.com:443/cb"),
        ("http://example.com:80/cb", "http://example.com/cb"),
        ("http://example.com/cb", "http://example.com:80/cb"),
        ("https://example.com/cb", "https://example.com:8443/cb"),
        ("http://[::1]/cb", "http://[::1]:8080/cb"),
        ("http://[::1]:80/cb", "http://[::1]/cb"),
        ("https://example.com/cb?", "https://example.com:443/cb?"),
        ("https://example.com/cb", "https://example.com/cb#rt=8000"),
        ("https://example.com/cb#rt=8000", "https://example.com/cb#rt=8000"),
    ],
)
def test_accepted_url_variants(signed, configured):
    """The default port may be added or removed, any port removed, a fragment dropped."""
    signature = scheme_b(TW_KEY, signed + "To+1")
    assert True is verify_signature(
        signing_key=TW_KEY, url=configured, signature=signature, params={"To": "+1"}
    )


@pytest.mark.parametrize(
    ("signed", "configured"),
    [
        ("https://example.com:80/cb", "https://example.com/cb"),
        ("http://example.com:443/cb", "http://example.com/cb"),
        ("https://example.com:8443/cb", "https://example.com/cb"),
        ("https://example.com:8443/cb", "https://example.com:9443/cb"),
        ("https://example.com/cb", "http://example.com/cb"),
        ("https://example.com/cb?", "https://example.com/cb"),
        ("https://example.com/cb#rt=8000", "https://example.com/cb"),
        ("https://Example.com/cb", "https://example.com/cb"),
    ],
)
def test_refused_url_variants(signed, configured):
    """Another port, scheme, query, fragment or host spelling than the accepted variants is refused."""
    signature = scheme_b(TW_KEY, signed + "To+1")
    assert False is verify_signature(
        signing_key=TW_KEY, url=configured, signature=signature, params={"To": "+1"}
    )


def test_percent_decoded_values_are_signed():
    """A value is signed decoded: '+' as sent in '%2B' (API-NOTES §10.2)."""
    signature = scheme_b(TW_KEY, U_TW + "From+14158675309")
    assert True is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params={"From": "+14158675309"}
    )
    assert False is verify_signature(
        signing_key=TW_KEY, url=U_TW, signature=signature, params={"From": "%2B14158675309"}
    )


def test_non_ascii_key_url_and_values_are_utf8():
    """Keys, URLs and values are signed as UTF-8."""
    signature = scheme_b("clé", "https://exämple.com/ç" + "CallerNameJosé")
    assert True is verify_signature(
        signing_key="clé",
        url="https://exämple.com/ç",
        signature=signature,
        params={"CallerName": "José"},
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"signing_key": ""}, ConfigError, r"signing_key is empty.*Signing Key"),
        ({"signing_key": []}, ConfigError, "signing_key is an empty collection"),
        ({"signing_key": ["PSK_a", ""]}, ConfigError, r"signing_key\[1\] is empty"),
        ({"signing_key": b"PSK_a"}, TypeError, "signing_key must be a str"),
        ({"signing_key": ["PSK_a", 5]}, TypeError, r"signing_key\[1\] must be a str, got int"),
        (
            {"signing_key": None},
            TypeError,
            "signing_key must be a str or an iterable of str, got NoneType",
        ),
        ({"url": ""}, ConfigError, "url must be the full http"),
        ({"url": "/voice"}, ConfigError, "url must be the full http"),
        ({"url": "ftp://example.com/voice"}, ConfigError, "url must be the full http"),
        ({"url": b"https://example.com/"}, TypeError, "url must be a str"),
        ({"params": {"a": "b"}, "body": b"{}"}, ConfigError, "not both"),
        ({"params": "To=%2B1"}, TypeError, "pass body= instead"),
        ({"params": {"CallDuration": 5}}, TypeError, r"params\['CallDuration'\] must be a str"),
        ({"params": [("To",)]}, TypeError, r"\(name, value\) pairs"),
        ({"params": 5}, TypeError, "mapping or"),
        ({"body": {"a": 1}}, TypeError, "body must be the raw request body"),
        ({"signature": b"abc="}, TypeError, "signature must be the header value as a str"),
    ],
)
def test_misuse_raises_a_clear_error(kwargs, error, match):
    """Each misuse raises an error naming the argument and saying what to do."""
    arguments = {"signing_key": SW_KEY, "url": V1_URL, "signature": V1_SIG} | kwargs
    with pytest.raises(error, match=match):
        verify_signature(**arguments)


@pytest.mark.parametrize(
    "key", ["PSK_V3bF8oyeRNpJWGoRWHNYQMUU", ["PSK_V3bF8oyeRNpJWGoRWHNYQMUU", 7]]
)
def test_the_key_is_in_no_error_message(key):
    """Errors raised for misuse never quote the key."""
    for kwargs in (
        {"url": "nope"},
        {"params": {"a": 1}},
        {"params": {}, "body": ""},
        {"signature": 1},
    ):
        arguments = {"signing_key": key, "url": V1_URL, "signature": V1_SIG} | kwargs
        with pytest.raises((TypeError, ValueError)) as raised:
            verify_signature(**arguments)
        assert SW_KEY not in str(raised.value)
        assert SW_KEY not in repr(raised.value)
