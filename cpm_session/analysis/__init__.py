"""From session folders to the trial's answer.

- `summarize.summarize(data_dir) -> SummaryResult(table, warnings)`: one row per session folder.
- `trial.read_allocation(path, blinded=False)` and `trial.analyze_trial(table, allocation, baseline_visit=,
  post_visit=) -> TrialAnalysis`: ANCOVA per outcome, reactivation, reliability, missing data, deviations.
- `ancova.fit_ancova(df, post, base, arm=, reference=)`, `reliability.icc(matrix)`.
- `plots.session_figure(session_dir, png)`, `plots.study_figure(wide, png)`, `report.write_report(...)`.
- `randomize.permuted_blocks(n, arms, block_size, seed)`; `synth.write_session(...)` (fast synthetic folders).

Sign convention everywhere: CPM_abs = TS_pre - TS_post, positive = inhibition.
"""
