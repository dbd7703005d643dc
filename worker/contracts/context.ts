// What parsing a request needs, whatever its contract: the modifiers, the input-image limits, the
// delivery defaults (S3, webhook) and INCLUDE_COMFYUI_RESPONSE. Built once by the core.
import type { InputLimits } from '../comfy/inputs';
import type { DeliveryContext } from './delivery-options';
import type { ModifierRegistry } from './wrapper/modifiers';

export interface ContractContext {
  modifiers: ModifierRegistry;
  inputs: InputLimits;
  delivery: DeliveryContext;
  /** INCLUDE_COMFYUI_RESPONSE */
  includeComfyResponse: boolean;
}
