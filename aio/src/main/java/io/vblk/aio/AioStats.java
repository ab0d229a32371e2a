package io.vblk.aio;

/**
 * Counters of one {@link LinuxAio} engine, printed by {@code vblk bench}: how well submissions
 * batch and how completions are reaped. Written on the engine's context thread only; other
 * threads read a possibly slightly stale value.
 */
public final class AioStats {
    /** io_submit system calls made (including ones that failed). */
    public long ioSubmitCalls;
    /** iocbs the kernel accepted. */
    public long iocbsSubmitted;
    /** io_submit calls that returned EAGAIN (ring full), which set the blocked flag. */
    public long eagain;
    /** Requests failed at submit time with an errno other than EAGAIN. */
    public long submitErrors;
    /** Completions reaped from the shared ring in user space. */
    public long ringCompletions;
    /** Completions fetched with io_getevents. */
    public long syscallCompletions;
    /** Eventfd wakeups handled. */
    public long eventfdWakeups;
    /** Reaps started by busy-polling the ring (the I/O thread's adaptive polling), not by the eventfd. */
    public long polledReaps;
    /** Reaps that found at least one completion. */
    public long reaps;
    /**
     * Turnarounds: spans from a reap that found completions to the start of the next io_submit
     * that the kernel accepted, i.e. the I/O thread's work between a batch's completions and the
     * submission of the requests they let start (the kernel's own submission work is not in it).
     * Spans over {@link #MAX_TURNAROUND_NANOS} (an idle loop, not work) are not counted.
     */
    public long turnarounds;
    /** Total nanoseconds of the counted turnarounds. */
    public long turnaroundNanos;
    /** The longest span counted as a turnaround: 10 ms. */
    public static final long MAX_TURNAROUND_NANOS = 10_000_000;

    public double iocbsPerSubmit() {
        return ioSubmitCalls == 0 ? 0 : (double) iocbsSubmitted / ioSubmitCalls;
    }

    public double completionsPerReap() {
        return reaps == 0 ? 0 : (double) (ringCompletions + syscallCompletions) / reaps;
    }

    /** Mean turnaround in microseconds (0 when none was counted). */
    public double meanTurnaroundMicros() {
        return turnarounds == 0 ? 0 : turnaroundNanos / 1e3 / turnarounds;
    }

    /** The counts since {@code earlier}, a snapshot of the same engine. */
    public AioStats minus(AioStats earlier) {
        AioStats d = new AioStats();
        d.ioSubmitCalls = ioSubmitCalls - earlier.ioSubmitCalls;
        d.iocbsSubmitted = iocbsSubmitted - earlier.iocbsSubmitted;
        d.eagain = eagain - earlier.eagain;
        d.submitErrors = submitErrors - earlier.submitErrors;
        d.ringCompletions = ringCompletions - earlier.ringCompletions;
        d.syscallCompletions = syscallCompletions - earlier.syscallCompletions;
        d.eventfdWakeups = eventfdWakeups - earlier.eventfdWakeups;
        d.reaps = reaps - earlier.reaps;
        d.polledReaps = polledReaps - earlier.polledReaps;
        d.turnarounds = turnarounds - earlier.turnarounds;
        d.turnaroundNanos = turnaroundNanos - earlier.turnaroundNanos;
        return d;
    }

    /** A copy of the counts (the counts since an all-zero start). */
    public AioStats snapshot() {
        return minus(new AioStats());
    }

    @Override
    public String toString() {
        return "AioStats[io_submit=" + ioSubmitCalls + ", iocbs=" + iocbsSubmitted + ", eagain=" + eagain
                + ", submitErrors=" + submitErrors + ", ring=" + ringCompletions + ", syscall=" + syscallCompletions
                + ", eventfd=" + eventfdWakeups + ", reaps=" + reaps + ", polledReaps=" + polledReaps
                + ", turnarounds=" + turnarounds + ", turnaroundNanos=" + turnaroundNanos + "]";
    }
}
