-- Clinic appointments: verified patients book open slots of doctors.
CREATE TABLE patients (
    patient_id TEXT PRIMARY KEY,
    full_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    phone TEXT NOT NULL
);

-- One row per patient whose identity was verified in this conversation.
CREATE TABLE verifications (
    patient_id TEXT PRIMARY KEY REFERENCES patients(patient_id),
    verified_at TEXT NOT NULL
);

CREATE TABLE doctors (
    doctor_id TEXT PRIMARY KEY,
    full_name TEXT NOT NULL,
    specialty TEXT NOT NULL
);

CREATE TABLE slots (
    slot_id TEXT PRIMARY KEY,
    doctor_id TEXT NOT NULL REFERENCES doctors(doctor_id),
    starts_at TEXT NOT NULL,
    minutes INTEGER NOT NULL DEFAULT 30,
    is_booked INTEGER NOT NULL DEFAULT 0 CHECK (is_booked IN (0, 1))
);

CREATE TABLE appointments (
    appointment_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(patient_id),
    slot_id TEXT NOT NULL REFERENCES slots(slot_id),
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    reason TEXT NOT NULL,
    booked_at TEXT NOT NULL
);
