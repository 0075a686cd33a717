import jobqueue_tui


def test_public_names_are_pinned() -> None:
    # A change here is a change of public API: make it on purpose.
    assert jobqueue_tui.__all__ == ["DashboardApp", "main"]
    for name in jobqueue_tui.__all__:
        assert getattr(jobqueue_tui, name).__module__.startswith("jobqueue_tui._")
