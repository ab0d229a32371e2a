package io.vblk.virtio.blk;

import io.vblk.block.IoCompletion;
import io.vblk.block.IoVector;
import io.vblk.virtio.queue.DescriptorChain;

/**
 * One virtio-blk request in flight: QEMU's VirtIOBlockReq. Pooled per queue; it owns its chain,
 * its data vector and the scratch it needs, so the steady state allocates nothing. A request may
 * lead a merged group ({@link #mergeNext} links the members, {@link #mergeQiov} spans them).
 * Touched only on its queue's I/O thread.
 */
final class BlkRequest {
    final QueueWorker worker;
    final DescriptorChain chain = new DescriptorChain();
    final IoVector qiov = new IoVector(8);
    final IoVector mergeQiov = new IoVector(8);
    final byte[] scratch = new byte[16];
    final Runnable rwTask = this::runRw;
    final Runnable otherTask = this::runOther;
    final IoCompletion rwDone = this::rwDone; // a read or write started without a coroutine ended

    long poppedAt;     // System.nanoTime() when popped, for the latency statistic
    int type;          // header type with BARRIER masked
    long sector;       // header sector
    long statusAddr;   // host address of the status byte
    int dataWritable;  // writable bytes before the status byte
    boolean isWrite;
    BlkRequest mergeNext;
    int mergeCount;
    long mergeBytes;

    BlkRequest(QueueWorker worker) {
        this.worker = worker;
    }

    private void runRw() {
        worker.runReadWrite(this);
    }

    private void rwDone(int ret) {
        worker.finishReadWrite(this, ret);
    }

    private void runOther() {
        worker.runOther(this);
    }

    void clear() {
        qiov.reset();
        mergeQiov.reset();
        mergeNext = null;
        mergeCount = 1;
        mergeBytes = 0;
        poppedAt = 0;
    }
}
