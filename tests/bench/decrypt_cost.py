"""Benchmark: what field-level encryption costs per 1,000 fields, in both cipher suites.

Pure primitives, no database: ``domain.encryption`` and ``domain.sealing`` on unsaved ORM rows.
For AES-256-GCM and SM4-GCM alike it times

1. decrypting 1,000 fields under data keys already unwrapped: short fields (names, phones, ID
   numbers, addresses: 6-40 bytes) and narrative (300 bytes of UTF-8 Chinese text), and the raw
   AEAD alone (AAD precomputed, no header parsing) as a floor;
2. unwrapping a data key under the key-encryption key, and the KEK subkey derivation within it;
3. a page as the gate opens it: 50 persons × 4 sealed fields + their 50 cases × 4 sealed fields
   (three 300-byte narratives and a short diagnosis each), i.e. 50 data keys unwrapped once and
   400 fields unsealed; and, for contrast, the same page with a key unwrapped for every field;
4. encrypting 1,000 fields, for comparison;
5. the blind index of 1,000 values (names, phones, ID numbers).

Each measurement is a batch timed with ``time.perf_counter``. All batches of both suites run
round-robin, ``--warmup`` rounds untimed and then ``--repeat`` timed rounds with garbage
collection paused, so noise on a shared machine falls on every measurement alike; the median
(p50), mean and minimum of each batch's runs are reported. Run with ``make bench``; results go
to ``var/bench/decrypt-cost.json`` and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.cases import Case
from domain.encryption import (
    HEADER,
    NONCE,
    TAG,
    Binding,
    DataKey,
    KeyEncryptionKey,
    Suite,
    _aad,
    blind_index,
    new_data_key,
)
from domain.persons import Person
from domain.sealing import seal, unseal

FIELDS = 1_000  # a batch: costs are reported per 1,000 fields
PAGE = 50  # persons on a page, and as many cases (one each)
PERSON_FIELDS = ("name", "id_number", "phone", "address")
CASE_FIELDS = ("presenting_problem", "support_plan", "diagnosis", "closure_outcome")
NARRATIVE_CHARS = 100  # 100 CJK characters (and full-width punctuation): 300 bytes of UTF-8

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余"
GIVEN = "小雨晓明建国秀英丽娟志强海燕静文杰敏华玉兰俊峰欣怡子涵梓轩浩然思远雅婷嘉怡宇航佳琪"
DISTRICTS = ("江汉区", "武昌区", "洪山区", "汉阳区", "青山区", "江岸区")
STREETS = ("解放大道", "中山路", "和平街", "建设路", "友谊路", "民主路", "新华路", "光明街")
PHRASES = (
    "服务对象近期情绪低落",
    "与家人沟通较少",
    "社工于本周上门走访",
    "了解其生活与就医情况",
    "学校反映其出勤不稳定",
    "已链接社区心理咨询资源",
    "低保申请材料尚在补充",
    "邻里关系总体和睦",
    "监护人表示愿意配合",
    "建议继续每两周跟进一次",
    "康复训练按计划进行",
    "就业意愿明显增强",
    "需关注夜间独处时的安全",
    "已与街道民政专干沟通",
    "下一步协助办理医保报销",
)
DIAGNOSES = (
    "抑郁状态，需定期复诊",
    "焦虑障碍（轻度），门诊随访",
    "二型糖尿病，规律用药",
    "高血压二级，家属督促服药",
    "注意缺陷多动障碍，学校支持",
)


# -- synthetic payloads --------------------------------------------------------------------------


def fake_name(rnd: random.Random) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choices(GIVEN, k=rnd.choice((1, 2, 2))))


def fake_phone(rnd: random.Random) -> str:
    return rnd.choice(("138", "139", "150", "186", "177")) + f"{rnd.randrange(10**8):08d}"


def fake_id_number(rnd: random.Random) -> str:
    birth = f"{rnd.randrange(1940, 2015)}{rnd.randrange(1, 13):02d}{rnd.randrange(1, 29):02d}"
    return f"420{rnd.randrange(100, 120)}{birth}{rnd.randrange(1000):03d}" + rnd.choice(
        "0123456789X"
    )


def fake_address(rnd: random.Random) -> str:
    return (
        f"{rnd.choice(DISTRICTS)}{rnd.choice(STREETS)}{rnd.randrange(1, 400)}号"
        f"{rnd.randrange(1, 30)}栋{rnd.randrange(101, 2800)}室"
    )


def fake_narrative(rnd: random.Random) -> str:
    text = ""
    while len(text) < NARRATIVE_CHARS:
        text += rnd.choice(PHRASES) + rnd.choice("，，。；")
    return text[: NARRATIVE_CHARS - 1] + "。"


def person_values(rnd: random.Random) -> dict[str, str | None]:
    return {
        "name": fake_name(rnd),
        "id_number": fake_id_number(rnd),
        "phone": fake_phone(rnd),
        "address": fake_address(rnd),
    }


def case_values(rnd: random.Random) -> dict[str, str | None]:
    return {
        "presenting_problem": fake_narrative(rnd),
        "support_plan": fake_narrative(rnd),
        "diagnosis": rnd.choice(DIAGNOSES),
        "closure_outcome": fake_narrative(rnd),
    }


Field = tuple[DataKey, bytes, Binding, bytes]  # key, ciphertext, where, plaintext


def sealed_fields(suite: Suite, rnd: random.Random, narrative: bool) -> list[Field]:
    """1,000 sealed fields, four per data key, bound to the columns they would live in."""
    out: list[Field] = []
    for n in range(FIELDS // 4):
        key = new_data_key(n + 1, suite)
        if narrative:
            table, values = "cases", {c: fake_narrative(rnd) for c in CASE_FIELDS}
        else:
            table, values = "persons", person_values(rnd)
        for column, text in values.items():
            plain = (text or "").encode()
            where = Binding(table, column, n + 1)
            out.append((key, key.encrypt(plain, where), where, plain))
    return out


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Measure:
    """One batch to time, and how to turn its seconds into the reported unit."""

    fn: Callable[[], object]
    scale: float
    unit: str
    runs: list[float] = field(default_factory=list)


def run_interleaved(measures: list[Measure], repeat: int, warmup: int) -> None:
    """Time every batch ``repeat`` times, round-robin after ``warmup`` untimed rounds, with
    garbage collection paused: noise from the host (this may be a shared VM) then falls on all
    measurements alike instead of on whichever ran during it, which keeps the ratios honest."""
    for _ in range(warmup):
        for m in measures:
            m.fn()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            gc.collect()
            for m in measures:
                start = time.perf_counter()
                m.fn()
                m.runs.append(time.perf_counter() - start)
    finally:
        if enabled:
            gc.enable()


def stats(m: Measure) -> dict[str, Any]:
    """p50, mean, min and stdev of the runs, in the measure's unit."""
    values = [r * m.scale for r in m.runs]
    return {
        "unit": m.unit,
        "p50": round(statistics.median(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "stdev": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
    }


US_PER_1000 = "µs per 1,000 fields"


# -- the measurements ---------------------------------------------------------------------------


def decrypt_all(fields: list[Field]) -> None:
    for key, ciphertext, where, _ in fields:
        key.decrypt(ciphertext, where)


def raw_floor(suite: Suite, fields: list[Field]) -> Callable[[], None]:
    """The AEAD alone: AAD, nonce and body prepared beforehand, AES contexts reused per key."""
    prepared = []
    contexts: dict[int, AESGCM] = {}
    for key, ciphertext, where, _ in fields:
        nonce = ciphertext[HEADER.size : HEADER.size + NONCE]
        body = ciphertext[HEADER.size + NONCE :]
        prepared.append((key, nonce, body, _aad(suite, key.id, where)))
        if suite is Suite.AES256_GCM:
            contexts.setdefault(key.id, AESGCM(key.secret))

    def aes() -> None:
        for key, nonce, body, aad in prepared:
            contexts[key.id].decrypt(nonce, body, aad)

    def sm4() -> None:
        for key, nonce, body, aad in prepared:
            decryptor = Cipher(
                algorithms.SM4(key.secret), modes.GCM(nonce, body[-TAG:])
            ).decryptor()
            decryptor.authenticate_additional_data(aad)
            decryptor.update(body[:-TAG])
            decryptor.finalize()

    return aes if suite is Suite.AES256_GCM else sm4


def encrypt_all(fields: list[Field]) -> None:
    for key, _, where, plain in fields:
        key.encrypt(plain, where)


class Page:
    """50 persons and one case each, sealed as the gate seals them, with their wrapped keys."""

    def __init__(self, suite: Suite, kek: KeyEncryptionKey, rnd: random.Random) -> None:
        index_key = os.urandom(32)
        self.kek = kek
        self.wrapped: dict[str, tuple[int, bytes]] = {}
        self.persons: list[Person] = []
        self.cases: list[Case] = []
        self.plain: list[str | None] = []
        for n in range(PAGE):
            person = Person(id=1000 + n)
            key = new_data_key(500 + n, suite)
            self.wrapped[person.key_owner] = (key.id, kek.wrap(key, person.key_owner))
            values = person_values(rnd)
            seal(person, key, values, index_key=index_key, suite=suite)
            self.persons.append(person)
            self.plain += values.values()
            case = Case(id=7000 + n, subject_id=person.id)
            values = case_values(rnd)
            seal(case, key, values, index_key=index_key, suite=suite)
            self.cases.append(case)
            self.plain += values.values()
        self.fields = PAGE * (len(PERSON_FIELDS) + len(CASE_FIELDS))

    def _unwrap(self, owner: str) -> DataKey:
        dek_id, wrapped = self.wrapped[owner]
        return self.kek.unwrap(wrapped, dek_id, owner)

    def open(self) -> list[str | None]:
        """As the gate does: each owner's key unwrapped once per request, then every field."""
        owners = sorted({r.key_owner for r in self.persons} | {c.key_owner for c in self.cases})
        deks = {owner: self._unwrap(owner) for owner in owners}
        out = []
        for person, case in zip(self.persons, self.cases, strict=True):
            key = deks[person.key_owner]
            out += [unseal(person, attr, key) for attr in PERSON_FIELDS]
            key = deks[case.key_owner]
            out += [unseal(case, attr, key) for attr in CASE_FIELDS]
        return out

    def open_unwrapping_per_field(self) -> list[str | None]:
        """The pattern the once-per-request cache avoids: a fresh unwrap for every field."""
        out = []
        for person, case in zip(self.persons, self.cases, strict=True):
            out += [unseal(person, a, self._unwrap(person.key_owner)) for a in PERSON_FIELDS]
            out += [unseal(case, a, self._unwrap(case.key_owner)) for a in CASE_FIELDS]
        return out


def index_values(rnd: random.Random) -> list[tuple[str, str]]:
    makers = {"name": fake_name, "phone": fake_phone, "id_number": fake_id_number}
    kinds = list(makers)
    return [(kinds[n % 3], makers[kinds[n % 3]](rnd)) for n in range(FIELDS)]


def prepare_suite(suite: Suite, seed: int) -> tuple[dict[str, Measure], dict[str, Any]]:
    """The batches of one suite, checked for correctness first, and the payload sizes."""
    rnd = random.Random(f"{seed}:{suite.name}")
    short = sealed_fields(suite, rnd, narrative=False)
    narrative = sealed_fields(suite, rnd, narrative=True)
    for fields in (short, narrative):  # correct before fast
        assert all(k.decrypt(c, w) == p for k, c, w, p in fields)

    kek = KeyEncryptionKey(1, os.urandom(32))
    keys = [new_data_key(n + 1, suite) for n in range(200)]
    wrapped = [(k.id, f"person:{k.id}", kek.wrap(k, f"person:{k.id}")) for k in keys]
    assert [kek.unwrap(w, i, o) for i, o, w in wrapped] == keys

    page = Page(suite, kek, rnd)
    assert page.open() == page.plain == page.open_unwrapping_per_field()

    index_key = os.urandom(32)
    to_index = index_values(rnd)

    def unwrap_all() -> None:
        for dek_id, owner, blob in wrapped:
            kek.unwrap(blob, dek_id, owner)

    def derive_all() -> None:
        for _ in wrapped:
            kek._key_for(suite)

    def index_all() -> None:
        for kind, value in to_index:
            blind_index(index_key, kind, value, suite)

    per_key = 1e6 / len(wrapped)
    measures = {
        "decrypt_short": Measure(lambda: decrypt_all(short), 1e6, US_PER_1000),
        "decrypt_narrative": Measure(lambda: decrypt_all(narrative), 1e6, US_PER_1000),
        "aead_floor_short": Measure(raw_floor(suite, short), 1e6, US_PER_1000),
        "aead_floor_narrative": Measure(raw_floor(suite, narrative), 1e6, US_PER_1000),
        "unwrap_key": Measure(unwrap_all, per_key, "µs per key"),
        "kek_subkey_derivation": Measure(derive_all, per_key, "µs per key"),
        "page_total": Measure(page.open, 1e3, "ms per page (50 unwraps + 400 fields)"),
        "page_unwrap_per_field": Measure(
            page.open_unwrapping_per_field, 1e3, "ms per page (400 unwraps + 400 fields)"
        ),
        "encrypt_short": Measure(lambda: encrypt_all(short), 1e6, US_PER_1000),
        "encrypt_narrative": Measure(lambda: encrypt_all(narrative), 1e6, US_PER_1000),
        "blind_index": Measure(index_all, 1e6, "µs per 1,000 values"),
    }
    payload = {
        "short_mean": round(statistics.fmean(len(p) for *_, p in short), 1),
        "short_range": [min(len(p) for *_, p in short), max(len(p) for *_, p in short)],
        "narrative_mean": round(statistics.fmean(len(p) for *_, p in narrative), 1),
        "page_fields": page.fields,
    }
    return measures, payload


def report_suite(measures: dict[str, Measure], payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {name: stats(m) for name, m in measures.items()}
    page = measures["page_total"]
    out["page_per_1000_fields"] = stats(
        Measure(
            page.fn,
            1e6 * FIELDS / payload["page_fields"],
            "µs per 1,000 fields, unwraps included",
            page.runs,
        )
    )
    out["payload_bytes"] = payload
    return out


# -- report ---------------------------------------------------------------------------------------

ROWS = (
    ("decrypt_short", "decrypt 1,000 short fields (µs)"),
    ("decrypt_narrative", "decrypt 1,000 narrative fields, 300 B (µs)"),
    ("aead_floor_short", "… raw AEAD floor, short (µs / 1,000)"),
    ("aead_floor_narrative", "… raw AEAD floor, narrative (µs / 1,000)"),
    ("unwrap_key", "unwrap 1 data key (µs)"),
    ("kek_subkey_derivation", "… of which KEK subkey derivation (µs)"),
    ("page_total", "page: 50 unwraps + 400 fields (ms)"),
    ("page_per_1000_fields", "page: per 1,000 fields incl. unwraps (µs)"),
    ("page_unwrap_per_field", "page, unwrapping per field instead (ms)"),
    ("encrypt_short", "encrypt 1,000 short fields (µs)"),
    ("encrypt_narrative", "encrypt 1,000 narrative fields (µs)"),
    ("blind_index", "blind index of 1,000 values (µs)"),
)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}" if value < 10 else f"{value:,.1f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    aes, sm4 = results["aes256gcm"], results["sm4gcm"]
    lines = [
        "| measurement | AES-256-GCM p50 | mean | SM4-GCM p50 | mean | SM4/AES (p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in ROWS:
        a, s = aes[name], sm4[name]
        lines.append(
            f"| {label} | {fmt(a['p50'])} | {fmt(a['mean'])} | {fmt(s['p50'])} | "
            f"{fmt(s['mean'])} | {s['p50'] / a['p50']:.2f}× |"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        info = Path("/proc/cpuinfo").read_text()
        for line in info.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                wanted = ("aes", "pclmulqdq", "avx2", "avx512f", "vaes", "vpclmulqdq", "gfni")
                flags = [f for f in wanted if f in present]
                break
    except OSError:
        pass
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        openssl = backend.openssl_version_text()
    except Exception:  # noqa: BLE001 - informative only
        openssl = "unknown"
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "openssl": openssl,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches before those")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic payloads")
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    suites = {"aes256gcm": Suite.AES256_GCM, "sm4gcm": Suite.SM4_GCM}
    prepared = {name: prepare_suite(suite, args.seed) for name, suite in suites.items()}
    run_interleaved(
        [m for measures, _ in prepared.values() for m in measures.values()],
        args.repeat,
        args.warmup,
    )
    results = {name: report_suite(*prepared[name]) for name in suites}
    report = {
        "benchmark": "field decryption cost per 1,000 fields (primitives, no database)",
        "environment": environment(),
        "settings": {"repeat": args.repeat, "warmup": args.warmup, "seed": args.seed},
        "page": {
            "persons": PAGE,
            "cases": PAGE,
            "person_fields": list(PERSON_FIELDS),
            "case_fields": list(CASE_FIELDS),
            "data_keys_unwrapped": PAGE,
            "fields_opened": PAGE * (len(PERSON_FIELDS) + len(CASE_FIELDS)),
        },
        **results,
        "sm4_over_aes_p50": {
            name: round(results["sm4gcm"][name]["p50"] / results["aes256gcm"][name]["p50"], 2)
            for name, _ in ROWS
        },
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    path = args.out / "decrypt-cost.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    env = report["environment"]
    print(
        f"## Field decryption cost ({env['cpu']}, {env['cpus_usable']} CPUs, Python "
        f"{env['python']}, cryptography {env['cryptography']}, {env['openssl']})\n"
    )
    print(table(results))
    payload = results["aes256gcm"]["payload_bytes"]
    print(
        f"\nshort fields {payload['short_range'][0]}-{payload['short_range'][1]} B "
        f"(mean {payload['short_mean']} B), narrative {payload['narrative_mean']} B; "
        f"{args.repeat} timed batches each after {args.warmup} warm-up; "
        f"{report['elapsed_s']} s in all; results in {path}"
    )


if __name__ == "__main__":
    main()
