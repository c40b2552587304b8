"""JUnit XML: one testsuite per run folder, one testcase per gate (fail → failure, skip → skipped)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from auditor.models import VerifyReport
from auditor.render.common import location


def render(report: VerifyReport, color: bool = False) -> str:
    """JUnit XML that CI systems render."""
    suites = ET.Element("testsuites", name="auditor verify")
    for run in report.runs:
        suite = ET.SubElement(suites, "testsuite", name=run.run_dir, tests=str(len(run.gates)),
                              failures=str(sum(r.status == "fail" for r in run.gates)),
                              skipped=str(sum(r.status == "skip" for r in run.gates)), errors="0")
        for r in run.gates:
            case = ET.SubElement(suite, "testcase", classname=run.run_dir, name=r.id)
            if r.evidence:
                case.set("file", f"{run.run_dir.rstrip('/')}/{r.evidence[0].path}")
                if r.evidence[0].line:
                    case.set("line", str(r.evidence[0].line))
            if r.status == "fail":
                failure = ET.SubElement(case, "failure", message=r.message, type=r.id)
                failure.text = f"{r.message}\n{location(r)}"
            elif r.status == "skip":
                ET.SubElement(case, "skipped", message=r.message)
            elif r.status == "warn":
                ET.SubElement(case, "system-out").text = f"WARN: {r.message}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
