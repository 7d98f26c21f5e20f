"""Default triage queries written into manifest.json, and (evaluation side only) which ground-truth label makes a
study positive for each query. Query sentences are written the way the training reports phrase findings; the
held-out evaluation uses report phrasings the model never saw, which these sentences do not depend on.

Priorities: acute infarct and haemorrhage STAT (time-critical treatment). Hydrocephalus STAT: acute obstructive
hydrocephalus needs a drain within hours and a scan cannot tell acute from chronic reliably, so missing it costs
more than an over-call. Mass URGENT (same-day, not minutes). White-matter disease and atrophy ROUTINE.
"""

DEFAULT_QUERIES = [
    {"id": "acute_infarct", "text": "There is an acute infarct with restricted diffusion.", "negativeText": "No acute infarct. No restricted diffusion.", "priority": "STAT"},
    {"id": "haemorrhage", "text": "There is an intracranial haemorrhage.", "negativeText": "No intracranial haemorrhage.", "priority": "STAT"},
    {"id": "hydrocephalus", "text": "There is hydrocephalus with enlarged ventricles.", "negativeText": "No hydrocephalus. Ventricles are normal in size.", "priority": "STAT"},
    {"id": "mass", "text": "There is an intracranial mass with surrounding oedema and mass effect.", "negativeText": "No intracranial mass. No mass effect.", "priority": "URGENT"},
    {"id": "white_matter_disease", "text": "There are white matter hyperintensities in keeping with small vessel disease.", "negativeText": "No white matter hyperintensities.", "priority": "ROUTINE"},
    {"id": "atrophy", "text": "There is generalised cerebral atrophy.", "negativeText": "No cerebral atrophy. Brain volume is normal for age.", "priority": "ROUTINE"},
]

NORMAL_QUERY = {"id": "normal", "text": "Normal MRI brain. No intracranial abnormality.", "negativeText": "Abnormal MRI brain.", "priority": "ROUTINE"}


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
