import Hummingbird
import NIOCore
import Tenancy

/// Per-request context: the request id (set by ``RequestIDMiddleware``), the client's address and,
/// after authentication, who is calling.
public struct GatewayContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String = ""
    public let remoteAddress: SocketAddress?
    /// The client's IP address as text (no port): read once per connection by
    /// ``HTTPConnectionHandler`` (it was made three times per request; issue 16), else once per request.
    public let clientIP: String?
    /// The connection (its hang-up hook cancels a request whose client went away).
    public let channel: any Channel
    public var principal: Principal?
    /// Body limit, set by the application from the configuration.
    public var maxBodyBytes: Int = 20 << 20
    /// Set by ``HTTPConnectionHandler``: a stream waiting for its first token is left here, and
    /// waited for in a task of its own, after the request's task ended (``PendingStream``).
    var pendingSlot: PendingSlot?

    public init(source: ApplicationRequestContextSource) {
        self.init(source: source, clientIP: source.channel.remoteAddress?.ipAddress)
    }

    init(source: ApplicationRequestContextSource, clientIP: String?) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.channel = source.channel
        self.clientIP = clientIP
    }

    public var maxUploadSize: Int { maxBodyBytes }
}
