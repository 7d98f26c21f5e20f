"""Default triage queries written into manifest.json, and (evaluation side only) which ground-truth label makes a
study positive for each query. Query sentences are written the way the training reports phrase findings; the
held-out evaluation uses report phrasings the model never saw, which these sentences do not depend on.

Priorities: acute infarct and haemorrhage STAT (time-critical treatment). Hydrocephalus STAT: acute obstructive
hydrocephalus needs a drain within hours and a scan cannot tell acute from chronic reliably, so missing it costs
more than an over-call. Mass URGENT (same-day, not minutes). White-matter disease and atrophy ROUTINE.
"""

DEFAULT_QUERIES = [
    {"id": "acute_infarct", "text": "Acute infarct with restricted diffusion.", "negativeText": "No acute infarct.", "priority": "STAT"},
    {"id": "haemorrhage", "text": "Intracerebral haemorrhage.", "negativeText": "No intracranial haemorrhage.", "priority": "STAT"},
    {"id": "hydrocephalus", "text": "Hydrocephalus with dilated lateral and third ventricles.", "negativeText": "No hydrocephalus.", "priority": "STAT"},
    {"id": "mass", "text": "Mass with surrounding oedema and mass effect.", "negativeText": "No intracranial mass, midline shift or mass effect.", "priority": "URGENT"},
    {"id": "white_matter_disease", "text": "White matter hyperintensities in keeping with small vessel disease.", "negativeText": "The white matter is normal in signal.", "priority": "ROUTINE"},
    {"id": "atrophy", "text": "Generalised cerebral atrophy.", "negativeText": "Brain volume is appropriate for age.", "priority": "ROUTINE"},
]

NORMAL_QUERY = {"id": "normal", "text": "Normal MRI brain. No intracranial abnormality.", "priority": "ROUTINE"}


def finding_types(label):
    """Finding type names in a labels.jsonl record (tools/synth), tolerant of {type} objects or plain strings."""
    out = set()
    for f in label.get("findings", []) or []:
        out.add(f.get("type") if isinstance(f, dict) else f)
    return out


def label_positive(label, query_id):
    if query_id == "normal":
        return bool(label.get("normal", len(finding_types(label)) == 0))
    return query_id in finding_types(label)
