package io.vblk.block;

/**
 * A request in flight on a node: QEMU's BdrvTrackedRequest. Serialising requests (RMW of
 * unaligned edges, COW) widen their overlap range to an alignment, and overlapping requests wait
 * for them (wait_serialising_requests).
 */
public final class TrackedRequest {
    public enum Type { READ, WRITE, FLUSH, DISCARD, TRUNCATE }

    final BlockNode node;
    final Type type;
    final long offset;
    final long bytes;
    long overlapOffset;
    long overlapBytes;
    boolean serialising;
    TrackedRequest waitingFor;     // guarded by node.reqLock
    final Coroutine co;
    final CoQueue waitQueue = new CoQueue();

    TrackedRequest(BlockNode node, Type type, long offset, long bytes) {
        this.node = node;
        this.type = type;
        this.offset = offset;
        this.bytes = bytes;
        this.overlapOffset = offset;
        this.overlapBytes = bytes;
        this.co = Coroutine.current();
    }

    public Type type() { return type; }
    public long offset() { return offset; }
    public long bytes() { return bytes; }
    public boolean serialising() { return serialising; }

    boolean overlaps(long off, long len) {
        return off < overlapOffset + overlapBytes && overlapOffset < off + len;
    }
}
