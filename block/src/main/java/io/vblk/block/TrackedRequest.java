package io.vblk.block;

/**
 * A request in flight on a node: QEMU's BdrvTrackedRequest. Serialising requests (RMW of
 * unaligned edges, copy-on-read) widen their overlap range to an alignment, and overlapping
 * requests wait for them (wait_serialising_requests in {@link BlockIo}).
 *
 * <p>Pooled, so that the aligned hot path allocates nothing: {@link #obtain} takes one from a
 * per-thread free list and {@link #recycle} gives it back. A coroutine only ever runs on its
 * home context's thread, so a request is obtained and recycled on the same thread. The object
 * also carries the request's scratch state (a reusable {@link IoVector} and an aligned bounce
 * buffer for RMW), which is why the slow paths allocate nothing in the steady state either.
 *
 * <p>The node's tracked-request list is intrusive ({@link #prev}/{@link #next}) and so is the
 * list of requests waiting for this one ({@link #firstWaiter}/{@link #nextWaiter}); all of those
 * links and {@link #waitingFor} are guarded by the node's {@code reqLock}.
 */
public final class TrackedRequest {
    public enum Type { READ, WRITE, FLUSH, DISCARD, TRUNCATE }

    BlockNode node;
    Type type;
    long offset;
    long bytes;
    long overlapOffset;            // guarded by node.reqLock once the request is listed
    long overlapBytes;             // guarded by node.reqLock once the request is listed
    boolean serialising;           // guarded by node.reqLock once the request is listed
    Coroutine co;                  // the coroutine running the request (null for a plain thread)
    Thread thread;                 // the thread running the request (wakes plain-thread waiters)

    TrackedRequest prev;           // node.trackedRequests links, guarded by node.reqLock
    TrackedRequest next;           // guarded by node.reqLock
    TrackedRequest waitingFor;     // the request this one is parked on; guarded by node.reqLock
    TrackedRequest firstWaiter;    // requests parked on this one; guarded by node.reqLock
    TrackedRequest nextWaiter;     // next in the waiter chain of waitingFor; guarded by node.reqLock

    // a request started by BlockIo.startRw: whom to tell, and the driver's completion of it
    IoCompletion startedDone;
    final IoCompletion driverDone = ret -> BlockIo.finishStarted(this, ret);

    /** Scratch vector for a padded or fragmented request; owned by the request's coroutine. */
    final IoVector localQiov = new IoVector(8);
    /** Scratch vector over one bounce block (an RMW edge read or write); owned by the request's coroutine. */
    final IoVector edgeQiov = new IoVector(1);
    /** Bounce buffer for RMW edges and copy-on-read; grown on demand, kept for reuse. */
    private NativeBuffer bounce;

    private TrackedRequest freeNext;  // per-thread free list link

    private static final class Pool {
        TrackedRequest head;
        int size;
    }

    private static final int POOL_MAX = 256;
    private static final ThreadLocal<Pool> POOL = ThreadLocal.withInitial(Pool::new);

    TrackedRequest() {}

    /** Takes a request object from this thread's pool (or a new one) and initialises it (tracked_request_begin's fields). */
    static TrackedRequest obtain(BlockNode node, Type type, long offset, long bytes) {
        Pool p = POOL.get();
        TrackedRequest r = p.head;
        if (r != null) {
            p.head = r.freeNext;
            p.size--;
            r.freeNext = null;
        } else {
            r = new TrackedRequest();
        }
        r.node = node;
        r.type = type;
        r.offset = offset;
        r.bytes = bytes;
        r.overlapOffset = offset;
        r.overlapBytes = bytes;
        r.serialising = false;
        r.co = Coroutine.current();
        r.thread = Thread.currentThread();
        return r;
    }

    /** Returns a finished request to this thread's pool. */
    static void recycle(TrackedRequest r) {
        r.node = null;
        r.co = null;
        r.thread = null;
        r.startedDone = null;
        r.prev = r.next = r.waitingFor = r.firstWaiter = r.nextWaiter = null;
        r.localQiov.reset();
        r.edgeQiov.reset();
        Pool p = POOL.get();
        if (p.size < POOL_MAX) {
            r.freeNext = p.head;
            p.head = r;
            p.size++;
        } else if (r.bounce != null) {
            r.bounce.close();
            r.bounce = null;
        }
    }

    /** An aligned bounce buffer of at least {@code size} bytes (qemu_blockalign), reused across requests. */
    NativeBuffer bounce(long size, long memAlign) {
        NativeBuffer b = bounce;
        if (b == null || b.size() < size || (b.address() & (memAlign - 1)) != 0) {
            if (b != null) {
                b.close();
            }
            b = NativeBuffer.allocate(size, Math.max(4096, memAlign));
            bounce = b;
        }
        return b;
    }

    public Type type() { return type; }
    public long offset() { return offset; }
    public long bytes() { return bytes; }
    public boolean serialising() { return serialising; }
    public long overlapOffset() { return overlapOffset; }
    public long overlapBytes() { return overlapBytes; }

    /** tracked_request_overlaps: does [off, off+len) meet this request's overlap range? */
    boolean overlaps(long off, long len) {
        return off < overlapOffset + overlapBytes && overlapOffset < off + len;
    }

    @Override
    public String toString() {
        return "TrackedRequest[" + type + " " + offset + "+" + bytes + (serialising ? " serialising " + overlapOffset + "+" + overlapBytes : "") + "]";
    }
}
