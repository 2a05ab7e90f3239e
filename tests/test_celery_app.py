"""Which workers push: the marker queue, or a worker started without -Q."""

from nventory.celery import takes_pushes


def test_a_worker_consuming_the_push_marker_queue_pushes():
    assert takes_pushes({"celery", "push"})
    assert takes_pushes({"push"})


def test_a_worker_started_without_queues_does_everything():
    assert takes_pushes({"celery"})


def test_a_webhook_only_worker_does_not_push():
    assert not takes_pushes({"webhooks"})
    assert not takes_pushes({"celery", "webhooks"})
