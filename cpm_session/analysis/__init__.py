"""From session folders to the trial's answer.

- `summarize.summarize(data_dir) -> SummaryResult(table, warnings)`: one row per session folder.
- `trial.read_allocation(path, blinded=False, control=None)` (the control arm is explicit: role column or
  `control`, never guessed) and `trial.analyze_trial(table, allocation, baseline_visit=, post_visit=) ->
  TrialAnalysis`: ANCOVA per outcome (primary CPM_abs, the rest secondary), complete-case table, CPM
  categories beyond the SRD95 with Fisher tests, HADS bands, reliability, missing data, deviations.
- `ancova.fit_ancova(df, post, base, arm=, reference=)`, `reliability.icc(matrix)`.
- `plots.session_figure(session_dir, png)`, `plots.study_figure(wide, png)`, `report.write_report(...)`.
- `randomize.permuted_blocks(n, arms, block_size, seed)`, `randomize.control_arm(arms, control)`;
  `synth.write_session(...)` (fast synthetic folders).
- `power.run_power(ns, effects, reps, seed, protocol_path=, workers=, scheduler=)`: whole simulated trials
  (`cpm_session.sim.trial.power_replicate`) on local cores or a Dask cluster; `power.write_outputs(...)`.

Sign convention everywhere: CPM_abs = TS_pre - TS_post, positive = inhibition.
"""
