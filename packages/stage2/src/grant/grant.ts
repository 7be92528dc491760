/** placeholder: grant record, written next */
export interface Grant { readonly id: number }
