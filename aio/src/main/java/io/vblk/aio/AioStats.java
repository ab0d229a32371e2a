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

    public double iocbsPerSubmit() {
        return ioSubmitCalls == 0 ? 0 : (double) iocbsSubmitted / ioSubmitCalls;
    }

    public double completionsPerReap() {
        return reaps == 0 ? 0 : (double) (ringCompletions + syscallCompletions) / reaps;
    }

    public AioStats snapshot() {
        AioStats s = new AioStats();
        s.ioSubmitCalls = ioSubmitCalls;
        s.iocbsSubmitted = iocbsSubmitted;
        s.eagain = eagain;
        s.submitErrors = submitErrors;
        s.ringCompletions = ringCompletions;
        s.syscallCompletions = syscallCompletions;
        s.eventfdWakeups = eventfdWakeups;
        s.reaps = reaps;
        s.polledReaps = polledReaps;
        return s;
    }

    @Override
    public String toString() {
        return "AioStats[io_submit=" + ioSubmitCalls + ", iocbs=" + iocbsSubmitted + ", eagain=" + eagain
                + ", submitErrors=" + submitErrors + ", ring=" + ringCompletions + ", syscall=" + syscallCompletions
                + ", eventfd=" + eventfdWakeups + ", reaps=" + reaps + ", polledReaps=" + polledReaps + "]";
    }
}
