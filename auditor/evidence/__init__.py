"""Reading a run folder: each module reads one kind of evidence; run.py ties them into RunEvidence."""
