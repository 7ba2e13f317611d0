"""The library database's schema: every migration in order, and the additive case-file tables.

Each MIGRATIONS entry upgrades the schema by one version (``PRAGMA user_version``); never edit a
released entry, append a new one. 1-2: the core library and cross-case linking; 3: integrity seals
and retention (voiceprint.store.integrity); 4: web workbench, audit chain, four-eyes (voiceprint.store.audit).
"""

from ..errors import DataError

CATEGORIES = ("prior_offender", "suspect", "key_person", "other")
#: a case's status; closed and solved cases leave the leads (docs/leads.md)
CASE_STATUSES = ("open", "closed", "solved")


def case_field_problem(date: str | None, status: str | None) -> str | None:
    """What is wrong with a case's date (YYYY-MM-DD, a real day) or status (one of CASE_STATUSES), or None."""
    import datetime
    import re

    if date:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
                raise ValueError
            datetime.date.fromisoformat(date)
        except ValueError:
            return f"date {date!r} is not a day - give it as YYYY-MM-DD (e.g. 2026-08-15)"
    if status and status not in CASE_STATUSES:
        return f"status {status!r} is not one of {', '.join(CASE_STATUSES)}"
    return None
def id_key(id_number: str | None) -> str:
    """An ID number as the library keeps and matches it: half-width (a Chinese input method's ５１０１０４…Ｘ is the
    same number), no spaces around it, upper case; a resident ID card number also without the hyphens or spaces
    written inside it (440304-19850612-1230 is 440304198506121230)."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFKC", id_number or "").strip().upper()
    bare = re.sub(r"[\s-]", "", text)
    return bare if bare != text and re.fullmatch(r"\d{17}[\dX]|\d{15}", bare) else text


def id_card_problem(id_number: str) -> str | None:
    """Why a number-like ID is not a resident ID card number (18 characters, the last a check digit by ISO 7064
    MOD 11-2; or the 15 digits of the old cards), else None. Passport numbers (letters and digits) pass: they
    are kept as given, and so is a wrong one - the warning is for the technician to check it."""
    import re

    text = id_key(id_number)
    if not text or not re.fullmatch(r"[0-9]+X?", text) or (len(text) == 15 and text.isdigit()):
        return None
    if len(text) != 18:
        return f"ID number {text} has {len(text)} characters, not the 18 of a resident ID card (or 15 of an old one)"
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(text[:17], weights, strict=True)) % 11]
    if text[17] != check:
        return f"ID number {text} fails its check digit (a resident ID card's last character would be {check})"
    return None


CATEGORY_ALIASES = {
    "prior offender": "prior_offender", "offender": "prior_offender", "前科": "prior_offender",
    "suspect": "suspect", "嫌疑人": "suspect",
    "key person": "key_person", "key": "key_person", "重点人员": "key_person",
    "other": "other", "": "other",
}


def normalise_category(value: str | None) -> str:
    key = (value or "").strip().lower().replace("-", " ").replace("_", " ")
    if key.replace(" ", "_") in CATEGORIES:
        return key.replace(" ", "_")
    if key in CATEGORY_ALIASES:
        return CATEGORY_ALIASES[key]
    raise DataError(f"unknown category {value!r} - use one of: {', '.join(CATEGORIES)}")


# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE persons (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        id_number TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL DEFAULT 'other'
            CHECK (category IN ('prior_offender','suspect','key_person','other')),
        notes TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        UNIQUE (name, id_number)
    );
    CREATE TABLE phones (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX phones_person ON phones(person_id);
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        case_number TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        date TEXT,
        area TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'open',
        created_at REAL NOT NULL
    );
    CREATE TABLE person_cases (
        person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        PRIMARY KEY (person_id, case_id)
    );
    CREATE TABLE phone_cases (
        phone_id INTEGER NOT NULL REFERENCES phones(id) ON DELETE CASCADE,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        PRIMARY KEY (phone_id, case_id)
    );
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        channel INTEGER NOT NULL DEFAULT 0,
        original_name TEXT NOT NULL,
        duration REAL NOT NULL,
        net_speech REAL NOT NULL,
        sample_rate INTEGER NOT NULL,
        codec TEXT NOT NULL DEFAULT '',
        quality TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        UNIQUE (sha256, channel)
    );
    CREATE TABLE voiceprints (
        id INTEGER PRIMARY KEY,
        recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        person_id INTEGER REFERENCES persons(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        vector BLOB NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (recording_id, person_id, model)
    );
    CREATE INDEX voiceprints_person ON voiceprints(person_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        operator TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: case recordings, unknown voices and their clusters across cases (voiceprint.linking)
    """
    CREATE TABLE case_voices (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        voice INTEGER NOT NULL DEFAULT 0,
        segments TEXT NOT NULL DEFAULT '[]',
        net_speech REAL NOT NULL DEFAULT 0,
        voiceprint_id INTEGER REFERENCES voiceprints(id) ON DELETE SET NULL,
        matched_person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        match_score REAL,
        created_at REAL NOT NULL,
        UNIQUE (case_id, recording_id, voice)
    );
    CREATE INDEX case_voices_voiceprint ON case_voices(voiceprint_id);
    CREATE TABLE voice_clusters (
        id INTEGER PRIMARY KEY,
        status TEXT NOT NULL DEFAULT 'auto' CHECK (status IN ('auto','confirmed','promoted')),
        person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE cluster_members (
        voiceprint_id INTEGER PRIMARY KEY REFERENCES voiceprints(id) ON DELETE CASCADE,
        cluster_id INTEGER NOT NULL REFERENCES voice_clusters(id) ON DELETE CASCADE,
        score REAL,
        joined_at REAL NOT NULL
    );
    CREATE INDEX cluster_members_cluster ON cluster_members(cluster_id);
    CREATE TABLE cannot_link (
        a INTEGER NOT NULL REFERENCES voiceprints(id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES voiceprints(id) ON DELETE CASCADE,
        PRIMARY KEY (a, b)
    );
    """,
    # 3: integrity seals, retention dates. 'integrity' = 'pending' until the rows are sealed (integrity_attach).
    """
    ALTER TABLE voiceprints ADD COLUMN seal TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN seal TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN retain_until TEXT;
    INSERT INTO meta(key, value) VALUES ('integrity', 'pending') ON CONFLICT(key) DO UPDATE SET value = 'pending';
    CREATE TRIGGER voiceprints_seal_insert AFTER INSERT ON voiceprints BEGIN
        UPDATE voiceprints SET seal = vp_seal_voiceprint(NEW.id, NEW.person_id, NEW.model, NEW.vector,
            (SELECT sha256 || ':' || channel FROM recordings WHERE id = NEW.recording_id),
            (SELECT value FROM meta WHERE key = 'model_fingerprint')) WHERE id = NEW.id;
    END;
    CREATE TRIGGER voiceprints_seal_update AFTER UPDATE OF id, recording_id, person_id, model, vector ON voiceprints BEGIN
        UPDATE voiceprints SET seal = vp_seal_voiceprint(NEW.id, NEW.person_id, NEW.model, NEW.vector,
            (SELECT sha256 || ':' || channel FROM recordings WHERE id = NEW.recording_id),
            (SELECT value FROM meta WHERE key = 'model_fingerprint')) WHERE id = NEW.id;
    END;
    CREATE TRIGGER persons_seal_insert AFTER INSERT ON persons BEGIN
        UPDATE persons SET seal = vp_seal_person(NEW.id, NEW.name, NEW.id_number, NEW.category, NEW.retain_until)
        WHERE id = NEW.id;
    END;
    CREATE TRIGGER persons_seal_update AFTER UPDATE OF id, name, id_number, category, retain_until ON persons BEGIN
        UPDATE persons SET seal = vp_seal_person(NEW.id, NEW.name, NEW.id_number, NEW.category, NEW.retain_until)
        WHERE id = NEW.id;
    END;
    """,
    # 4: users, web sessions, saved results, uploads, pending enrolments, the chained audit trail
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('technician','investigator','analyst','supervisor')),
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE results (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        operator TEXT NOT NULL,
        created_at REAL NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE uploads (
        sha256 TEXT PRIMARY KEY,
        original_name TEXT NOT NULL,
        size INTEGER NOT NULL,
        uploaded_by TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    ALTER TABLE voiceprints ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE voiceprints ADD COLUMN enrolled_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit WHEN OLD.hash != ''
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    """,
]
INTEGRITY_SCHEMA = 3  # the schema version that added the seals
CHAIN_SCHEMA = 4  # the schema version that added the audit chain

# Case file and lead graph (voiceprint.graph, voiceprint.fused): additive tables created on open when missing
# (IF NOT EXISTS; no schema version of their own), so a library written before them gains them and an older voiceprint ignores them.
CASEFILE_SCHEMA = """
CREATE TABLE IF NOT EXISTS case_calls (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    called_at TEXT NOT NULL DEFAULT '',
    victim_number TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    UNIQUE (case_id, number, called_at)
);
CREATE INDEX IF NOT EXISTS case_calls_number ON case_calls(number);
CREATE TABLE IF NOT EXISTS case_voice_vectors (
    case_voice_id INTEGER PRIMARY KEY REFERENCES case_voices(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    domain TEXT NOT NULL,
    net_speech REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lead_edges (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    kind TEXT NOT NULL,
    log10_lr REAL,
    evidence TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS lead_edges_src ON lead_edges(src);
CREATE INDEX IF NOT EXISTS lead_edges_dst ON lead_edges(dst);
CREATE INDEX IF NOT EXISTS lead_edges_origin ON lead_edges(origin);
CREATE TABLE IF NOT EXISTS lead_state (
    origin TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    built_at REAL NOT NULL,
    edges INTEGER NOT NULL
);
"""
CASEFILE_TABLES = ("case_calls", "case_voice_vectors", "lead_edges", "lead_state")
