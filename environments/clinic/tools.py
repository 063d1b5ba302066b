"""Clinic front desk: verify a patient, find doctors and open slots, book, cancel, reschedule."""

import re
from datetime import datetime, timedelta

from gem_graph.runtime import ToolError, new_id, now

NOTICE_HOURS = 24
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _rows(db, sql, params=()):
    cursor = db.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _require_verified(db, patient_id):
    found = db.execute("SELECT 1 FROM verifications WHERE patient_id = ?", (patient_id,)).fetchone()
    if found is None:
        raise ToolError("patient identity not verified; call verify_patient first")


def _open_slot(db, slot_id):
    found = _rows(db, "SELECT * FROM slots WHERE slot_id = ?", (slot_id,))
    if not found:
        raise ToolError(f"slot {slot_id} does not exist")
    if found[0]["is_booked"]:
        raise ToolError(f"slot {slot_id} is already taken")
    return found[0]


def _check_notice(starts_at, action):
    if datetime.fromisoformat(starts_at) - now() < timedelta(hours=NOTICE_HOURS):
        raise ToolError(f"{action} needs at least {NOTICE_HOURS} hours notice")


def _check_same_day(db, patient_id, starts_at, ignore_appointment=None):
    clash = db.execute(
        "SELECT a.appointment_id FROM appointments a JOIN slots s USING (slot_id) "
        "WHERE a.patient_id = ? AND a.status = 'booked' AND substr(s.starts_at, 1, 10) = ? "
        "AND a.appointment_id IS NOT ?",
        (patient_id, starts_at[:10], ignore_appointment),
    ).fetchone()
    if clash is not None:
        raise ToolError(f"patient already has appointment {clash[0]} that day")


def _own_appointment(db, patient_id, appointment_id):
    _require_verified(db, patient_id)
    found = _rows(
        db,
        "SELECT a.appointment_id, a.status, a.slot_id, s.doctor_id, s.starts_at "
        "FROM appointments a JOIN slots s USING (slot_id) "
        "WHERE a.appointment_id = ? AND a.patient_id = ?",
        (appointment_id, patient_id),
    )
    if not found:
        raise ToolError(f"appointment {appointment_id} not found for this patient")
    if found[0]["status"] != "booked":
        raise ToolError(f"appointment {appointment_id} is already {found[0]['status']}")
    return found[0]


def verify_patient(db, full_name, date_of_birth):
    """Verify identity by full name and date of birth; booking tools need this first."""
    if not DATE_PATTERN.match(date_of_birth):
        raise ToolError("date_of_birth must be written YYYY-MM-DD")
    found = _rows(
        db,
        "SELECT patient_id, full_name FROM patients "
        "WHERE lower(full_name) = lower(?) AND date_of_birth = ?",
        (full_name.strip(), date_of_birth),
    )
    if not found:
        raise ToolError("no patient matches that name and date of birth")
    db.execute(
        "INSERT OR IGNORE INTO verifications (patient_id, verified_at) VALUES (?, ?)",
        (found[0]["patient_id"], now().isoformat()),
    )
    return found[0]


def list_doctors(db, specialty=None):
    """Doctors of the clinic, optionally only one specialty."""
    if specialty is None:
        return _rows(db, "SELECT * FROM doctors ORDER BY doctor_id")
    found = _rows(
        db, "SELECT * FROM doctors WHERE specialty = ? ORDER BY doctor_id", (specialty.lower(),)
    )
    if not found:
        raise ToolError(f"no doctors with specialty {specialty!r}")
    return found


def find_available_slots(db, doctor_id, date=None):
    """Future open slots of a doctor, optionally on one day (YYYY-MM-DD)."""
    if not db.execute("SELECT 1 FROM doctors WHERE doctor_id = ?", (doctor_id,)).fetchone():
        raise ToolError(f"doctor {doctor_id} does not exist")
    if date is not None and not DATE_PATTERN.match(date):
        raise ToolError("date must be written YYYY-MM-DD")
    slots = _rows(
        db,
        "SELECT slot_id, doctor_id, starts_at, minutes FROM slots "
        "WHERE doctor_id = ? AND is_booked = 0 AND starts_at > ? ORDER BY starts_at",
        (doctor_id, now().isoformat()),
    )
    return [s for s in slots if date is None or s["starts_at"].startswith(date)]


def book_appointment(db, patient_id, slot_id, reason):
    """Book an open slot at least 24 hours ahead; one appointment per patient per day."""
    _require_verified(db, patient_id)
    slot = _open_slot(db, slot_id)
    _check_notice(slot["starts_at"], "booking")
    _check_same_day(db, patient_id, slot["starts_at"])
    appointment_id = new_id("apt")
    db.execute(
        "INSERT INTO appointments (appointment_id, patient_id, slot_id, status, reason, booked_at)"
        " VALUES (?, ?, ?, 'booked', ?, ?)",
        (appointment_id, patient_id, slot_id, reason, now().isoformat()),
    )
    db.execute("UPDATE slots SET is_booked = 1 WHERE slot_id = ?", (slot_id,))
    return {
        "appointment_id": appointment_id,
        "doctor_id": slot["doctor_id"],
        "starts_at": slot["starts_at"],
        "status": "booked",
    }


def list_appointments(db, patient_id):
    """The verified patient's appointments with doctor and time, soonest first."""
    _require_verified(db, patient_id)
    return _rows(
        db,
        "SELECT a.appointment_id, a.status, a.reason, s.starts_at, d.full_name AS doctor "
        "FROM appointments a JOIN slots s USING (slot_id) JOIN doctors d USING (doctor_id) "
        "WHERE a.patient_id = ? ORDER BY s.starts_at",
        (patient_id,),
    )


def cancel_appointment(db, patient_id, appointment_id):
    """Cancel a booked appointment at least 24 hours before it starts; frees the slot."""
    appointment = _own_appointment(db, patient_id, appointment_id)
    _check_notice(appointment["starts_at"], "cancelling")
    db.execute(
        "UPDATE appointments SET status = 'cancelled' WHERE appointment_id = ?", (appointment_id,)
    )
    db.execute("UPDATE slots SET is_booked = 0 WHERE slot_id = ?", (appointment["slot_id"],))
    return {"appointment_id": appointment_id, "status": "cancelled"}


def reschedule_appointment(db, patient_id, appointment_id, new_slot_id):
    """Move an appointment to another open slot of the same doctor, both 24 hours ahead."""
    appointment = _own_appointment(db, patient_id, appointment_id)
    _check_notice(appointment["starts_at"], "rescheduling")
    slot = _open_slot(db, new_slot_id)
    if slot["doctor_id"] != appointment["doctor_id"]:
        raise ToolError("an appointment can only move to a slot of the same doctor")
    _check_notice(slot["starts_at"], "booking")
    _check_same_day(db, patient_id, slot["starts_at"], ignore_appointment=appointment_id)
    db.execute("UPDATE slots SET is_booked = 0 WHERE slot_id = ?", (appointment["slot_id"],))
    db.execute("UPDATE slots SET is_booked = 1 WHERE slot_id = ?", (new_slot_id,))
    db.execute(
        "UPDATE appointments SET slot_id = ? WHERE appointment_id = ?",
        (new_slot_id, appointment_id),
    )
    return {"appointment_id": appointment_id, "starts_at": slot["starts_at"], "status": "booked"}
