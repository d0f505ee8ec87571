"""The run report: document model, path diagram, figures, report.md / report.html."""
