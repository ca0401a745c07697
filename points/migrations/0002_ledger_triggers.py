"""Database-level guards of the ledger (PostgreSQL only; SQLite, the demo database, relies
on the services and ``points_verify_ledger``):

- transactions, entries and lot movements cannot be updated or deleted;
- at commit, every transaction has at least two entries and its entries sum to zero.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION points_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are immutable: corrections are new transactions', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER points_transaction_immutable BEFORE UPDATE OR DELETE ON points_transaction
    FOR EACH ROW EXECUTE FUNCTION points_refuse_change();
CREATE TRIGGER points_entry_immutable BEFORE UPDATE OR DELETE ON points_entry
    FOR EACH ROW EXECUTE FUNCTION points_refuse_change();
CREATE TRIGGER points_lotmovement_immutable BEFORE UPDATE OR DELETE ON points_lotmovement
    FOR EACH ROW EXECUTE FUNCTION points_refuse_change();

CREATE OR REPLACE FUNCTION points_check_balanced() RETURNS trigger AS $$
DECLARE
    txn_id bigint;
    total numeric;
    entry_count integer;
BEGIN
    IF TG_TABLE_NAME = 'points_transaction' THEN
        txn_id := NEW.id;
    ELSE
        txn_id := NEW.transaction_id;
    END IF;
    SELECT coalesce(sum(amount), 0), count(*) INTO total, entry_count
        FROM points_entry WHERE transaction_id = txn_id;
    IF total <> 0 OR entry_count < 2 THEN
        RAISE EXCEPTION 'points transaction % is unbalanced: entries sum to % over % entries',
            txn_id, total, entry_count USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER points_transaction_balanced AFTER INSERT ON points_transaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION points_check_balanced();
CREATE CONSTRAINT TRIGGER points_entry_balanced AFTER INSERT ON points_entry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION points_check_balanced();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS points_entry_balanced ON points_entry;
DROP TRIGGER IF EXISTS points_transaction_balanced ON points_transaction;
DROP FUNCTION IF EXISTS points_check_balanced();
DROP TRIGGER IF EXISTS points_lotmovement_immutable ON points_lotmovement;
DROP TRIGGER IF EXISTS points_entry_immutable ON points_entry;
DROP TRIGGER IF EXISTS points_transaction_immutable ON points_transaction;
DROP FUNCTION IF EXISTS points_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:  # no params: '%' is literal
            cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("points", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
