package io.vblk.virtio.vhost;

/**
 * A front-end broke the vhost-user protocol (bad size, unknown or out-of-order message, bad ring
 * or memory description). The connection handler logs it and closes the connection; it is never a
 * reason to crash the backend.
 */
public final class VhostUserProtocolException extends Exception {
    public VhostUserProtocolException(String message) { super(message); }
}
