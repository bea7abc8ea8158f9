"""Prints the reference fuzzer's counts per function (clean / clear error / defect) after a run
that included properties/oracle/test_fuzz.py."""

from properties.oracle import fuzz_report


def pytest_terminal_summary(terminalreporter):
    lines = fuzz_report.summary_lines()
    if lines:
        terminalreporter.section("reference fuzzer: calls per function")
        for line in lines:
            terminalreporter.write_line(line)
