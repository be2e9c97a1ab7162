"""The export dialog: Enter on the format list exports it, an existing file is replaced only after a yes,
and the best spec lands in the studies folder, where the Studies screen's `n` lists it."""

from __future__ import annotations

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.confirm import ConfirmScreen
from tui.screens.export import ExportScreen
from tui.screens.picker import SpecPicker
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen
from tui.widgets.trial_table import TrialTable


async def open_export(app, pilot) -> None:
    await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 12, what="12 trials")
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), what="the export dialog")


async def test_enter_on_the_format_list_exports_that_format(small_store, make_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # trials are offered a path in the working folder
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_export(app, pilot)
        await pilot.press("down", "enter")  # the format list has the focus: JSON, exported at once
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), what="the export")
    assert (tmp_path / "digits_mlp.json").read_text().startswith("[")
    assert not (tmp_path / "digits_mlp.csv").exists()


async def test_an_existing_file_is_replaced_only_after_yes(small_store, make_app, tmp_path):
    target = tmp_path / "trials.csv"
    target.write_text("mine\n")
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_export(app, pilot)
        app.screen.query_one("#export-path").value = str(target)
        app.screen.query_one("#export-path").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert "trials.csv exists" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), what="back to the dialog")
        await pilot.pause(0.2)
        assert target.read_text() == "mine\n"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), what="the export")
    assert target.read_text().startswith("number,")


async def test_the_best_spec_is_offered_in_the_studies_folder_and_n_lists_it(any_store, make_app, studies_dir):
    app = make_app(any_store, open_study="digits_mlp")  # a SQLite file and a PostgreSQL database
    async with app.run_test(size=(80, 24)) as pilot:
        await open_export(app, pilot)
        await pilot.press("down", "down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), what="the export")
        assert 'name = "digits_mlp-best"' in (studies_dir / "digits_mlp-best.toml").read_text()
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StudiesScreen), what="the Studies screen")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, SpecPicker), what="the spec picker")
        assert "digits_mlp-best.toml" in screen_text(app)


async def test_a_study_with_several_objectives_asks_which_pareto_front_trial_to_write(make_app, studies_dir, tmp_path):
    from tests.tui.builders import build_pareto_study

    url = f"sqlite:///{tmp_path}/pareto.db"
    front = build_pareto_study(url)
    app = make_app(url, open_study="pareto_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 5, what="5 trials")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), what="the export dialog")
        await pilot.press("down", "down", "enter")  # the spec: no single best, so the front is listed
        await wait_for(pilot, lambda: app.screen.query_one("#export-front").display, what="the front's trials")
        listed = [str(app.screen.query_one("#export-front").get_option_at_index(i).prompt)
                  for i in range(app.screen.query_one("#export-front").option_count)]  # fmt: skip
        assert listed == ["#0  val_acc 0.8, params 1200", "#2  val_acc 0.9, params 5000",
                          "#4  val_acc 0.97, params 70000"]  # fmt: skip
        assert [int(line.split()[0][1:]) for line in listed] == front
        assert "choose a Pareto-front trial" in screen_text(app)
        await pilot.press("down", "enter")  # the second front trial, #2
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), what="the export")
    written = (studies_dir / "pareto_mlp-trial2.toml").read_text()
    assert "width = 64" in written and "--trial 2" in written and "trial 2 of pareto_mlp" in written


async def test_a_study_without_a_stored_spec_says_so_before_the_spec_is_chosen(optuna_store, make_app, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    app = make_app(optuna_store, open_study="plain")  # made by Optuna alone: no spec to fix the params into
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 6, what="6 trials")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), what="the export dialog")
        kinds = app.screen.query_one("#export-kind")
        await wait_for(pilot, lambda: kinds.get_option("spec").disabled, what="the spec option disabled")
        # the words `tunetui export plain --best-spec FILE` exits 1 with, from the same engine function
        why = app.screen.query_one("#export-why")
        assert str(why.content) == "no spec export: study 'plain' has no stored spec (it was not started by tunetui)"
        await wait_for(pilot, lambda: "has no stored spec" in screen_text(app), what="the reason, painted")
        await pilot.press("down", "down", "down")  # the cursor never lands on the disabled spec option
        assert kinds.highlighted_option.id == "json"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), what="the JSON export")
    assert not [n for n in app._notifications if "export failed" in n.message]
    assert (tmp_path / "plain.json").read_text().startswith("[") and not list(tmp_path.glob("*.toml"))
