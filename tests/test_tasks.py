import asyncio

from server.tasks import cancel_and_wait


async def test_a_task_that_loses_its_cancellation_is_cancelled_again():
    swallowed = asyncio.Event()

    async def loop_that_loses_a_cancel() -> None:
        # What a library that drops a CancelledError looks like from outside:
        # the loop goes on to its next await as if nothing happened.
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(loop_that_loses_a_cancel(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], recancel_after=0.05), timeout=5)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_errors_raised_while_stopping_do_not_stop_the_others():
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def sleeps() -> None:
        await asyncio.sleep(3600)

    failing = asyncio.create_task(fails_on_cancel())
    sleeping = asyncio.create_task(sleeps())
    await asyncio.sleep(0)
    await cancel_and_wait([failing, None, sleeping])
    assert isinstance(failing.exception(), RuntimeError)
    assert sleeping.cancelled()
